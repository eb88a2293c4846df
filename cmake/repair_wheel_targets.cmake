# Repair imported CMake targets that name include directories which do not exist here.
#
# The ROS 2 wheels on PyPI were built in a manylinux container; their exported
# `<pkg>__rosidl_generator_py` targets list that container's Python and NumPy include
# directories (/opt/python/cp311-cp311/...). CMake refuses such targets ("includes
# non-existent path"). This drops every missing include directory of the imported targets
# of the calling directory and, for targets that lost one, adds this interpreter's Python
# and NumPy include directories instead. On a regular ROS 2 install every path exists and
# nothing changes.
#
# Usage (after the last find_package / rosidl_generate_interfaces call):
#   include(cmake/repair_wheel_targets.cmake)
#   worldfm_repair_imported_include_dirs()

function(worldfm_repair_imported_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(_replacement_dirs "")
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped FALSE)
    foreach(_dir IN LISTS _dirs)
      # Keep generator expressions untouched; they are evaluated later.
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        set(_dropped TRUE)
      endif()
    endforeach()
    if(_dropped)
      if(NOT _replacement_dirs)
        find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
        set(_replacement_dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      endif()
      list(APPEND _kept ${_replacement_dirs})
      list(REMOVE_DUPLICATES _kept)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
      message(STATUS "worldfm_ros: repaired include directories of imported target ${_target}")
    endif()
  endforeach()
endfunction()

# Keep exported include directories that lie inside the source tree out of the install export.
#
# rosidl adds this interpreter's Python and NumPy include directories to the PUBLIC interface
# of `<pkg>__rosidl_generator_py`. When the venv sits inside the checkout (scripts/setup.sh
# makes `.venv/` there) those paths are "prefixed in the source directory" and CMake refuses
# to export them. They are wrapped in $<BUILD_INTERFACE:...>: the build uses them, the
# installed export omits them (a downstream package finds its own Python and NumPy).
function(worldfm_keep_source_include_dirs_out_of_export target)
  if(NOT TARGET ${target})
    return()
  endif()
  get_target_property(_dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    return()
  endif()
  set(_fixed "")
  foreach(_dir IN LISTS _dirs)
    string(FIND "${_dir}/" "${CMAKE_SOURCE_DIR}/" _pos)
    if(_pos EQUAL 0)
      list(APPEND _fixed "$<BUILD_INTERFACE:${_dir}>")
    else()
      list(APPEND _fixed "${_dir}")
    endif()
  endforeach()
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
endfunction()
