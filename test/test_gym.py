"""worldfm_ros.gym: the contract's spaces and episode rules, check_env, seeding and bytes,
gymnasium.vector (sync and the batched vector env), collisions in the env, the example."""

import importlib.util
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldfm_ros.gym  # noqa: F401 - registers WorldFM-v0
from nav_truth import floor_plan_distance
from worldfm_ros.core.synthetic import SyntheticWorld
from worldfm_ros.core.errors import WorldFileError
from worldfm_ros.gym import WorldFMVectorEnv, build_synthetic_world
from worldfm_ros.gym.robot import InvalidEnvOptionError, load_world

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("gym") / "synthetic.world"
    assert build_synthetic_world(path) > 50
    return str(path)


@pytest.fixture(scope="module")
def world(world_path):
    return load_world(world_path)


def test_spaces_and_episode_follow_the_contract(world):
    env = gym.make("WorldFM-v0", world=world, width=64, height=48, max_steps=3, dt=0.1, v_max=0.5, w_max=1.0)
    assert env.action_space.shape == (2,)
    np.testing.assert_allclose(env.action_space.low, [-0.5, -1.0])
    obs, info = env.reset(seed=0, options={"pose": [env.unwrapped.robot.remembered[0, 0],
                                                     env.unwrapped.robot.remembered[0, 1], 0.3]})
    assert obs["rgb"].shape == (48, 64, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (48, 64) and obs["depth"].dtype == np.float32
    assert obs["pose"].dtype == np.float64 and obs["pose"][2] == pytest.approx(0.3)
    assert set(info) == {"coverage", "collided", "T_world_base"} and 0 <= info["coverage"] <= 1
    x0 = obs["pose"][:2].copy()
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], np.float32))
    # Held for dt: 5 cm along the heading (unless the map refuses the step).
    if not info["collided"]:
        np.testing.assert_allclose(obs["pose"][:2] - x0, 0.05 * np.array([math.cos(0.3), math.sin(0.3)]), atol=1e-9)
    assert reward == 0.0 and terminated == info["collided"]
    env.step(np.zeros(2, np.float32))
    *_, truncated, _ = env.step(np.zeros(2, np.float32))
    assert truncated


def test_check_env_passes(world_path):
    # From the path: check_env re-creates the env from its spec (deep-copied keyword arguments).
    env = gym.make("WorldFM-v0", world_path=world_path, width=32, height=24).unwrapped
    check_env(env, skip_render_check=True)


def test_same_seed_same_episode_bytes(world):
    def episode(seed):
        env = gym.make("WorldFM-v0", world=world, width=48, height=36)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        frames = [obs["rgb"].tobytes() + obs["depth"].tobytes() + obs["pose"].tobytes()]
        for _ in range(15):
            obs, *_ = env.step(env.action_space.sample())
            frames.append(obs["rgb"].tobytes() + obs["depth"].tobytes() + obs["pose"].tobytes())
        return frames

    a, b, c = episode(5), episode(5), episode(6)
    assert a == b
    assert a[0] != c[0]  # another seed starts elsewhere


def test_driving_into_a_wall_terminates_and_reward_fn_sees_info(world):
    calls = []

    def reward_fn(info):
        calls.append(info["collided"])
        return -1.0 if info["collided"] else 0.1

    env = gym.make("WorldFM-v0", world=world, width=32, height=24, max_steps=400, reward_fn=reward_fn)
    obs, info = env.reset(seed=1)
    for step in range(400):
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], np.float32))
        T = info["T_world_base"]
        assert not world.occupancy_map.footprint_collides(T[0, 3], T[1, 3], 0.2)
        if terminated:
            break
    assert terminated and info["collided"] and reward == -1.0 and calls[-1] is True
    # The map it stopped at is the synthetic world's floor plan (seed 3): the footprint's edge
    # is within one map cell of the true surface.
    gap = float(floor_plan_distance(SyntheticWorld.generate(3), T[:2, 3]))
    print(f"gym: stopped {gap:.4f} m from the nearest surface after {step + 1} steps")
    assert abs(gap - 0.2) <= world.occupancy_map.resolution


def test_random_episodes_never_enter_an_obstacle(world):
    env = gym.make("WorldFM-v0", world=world, width=16, height=12, max_steps=100)
    env.action_space.seed(3)
    collisions = 0
    for episode in range(5):
        env.reset(seed=100 + episode)
        for _ in range(100):
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            T = info["T_world_base"]
            assert not world.occupancy_map.footprint_collides(T[0, 3], T[1, 3], 0.2)
            collisions += terminated
            if terminated or truncated:
                break
    print(f"random episodes: {collisions} ended by a refused step")


def test_bad_options_are_refused(world, tmp_path):
    with pytest.raises(InvalidEnvOptionError):
        gym.make("WorldFM-v0", world=world, max_steps=0)
    with pytest.raises(InvalidEnvOptionError):
        gym.make("WorldFM-v0", world=world, dt=-0.1)
    with pytest.raises(WorldFileError):
        gym.make("WorldFM-v0", world_path=str(tmp_path / "missing.world"))
    env = gym.make("WorldFM-v0", world=world, width=16, height=12)
    with pytest.raises(InvalidEnvOptionError):
        env.reset(options={"pose": [0.0, math.nan, 0.0]})
    env.reset(seed=0)
    with pytest.raises(InvalidEnvOptionError):
        env.step(np.array([math.nan, 0.0]))


def test_batched_vector_env_matches_the_single_env(world):
    n = 4
    vec = WorldFMVectorEnv(n, world=world, width=48, height=36, max_steps=5)
    obs, info = vec.reset(seed=7)
    assert obs["rgb"].shape == (n, 36, 48, 3) and info["T_world_base"].shape == (n, 4, 4)
    singles = [gym.make("WorldFM-v0", world=world, width=48, height=36, max_steps=5) for _ in range(n)]
    single_obs = [env.reset(seed=7 + i)[0] for i, env in enumerate(singles)]
    for i in range(n):
        assert np.array_equal(obs["rgb"][i], single_obs[i]["rgb"])
        np.testing.assert_array_equal(obs["pose"][i], single_obs[i]["pose"])
    rng = np.random.default_rng(0)
    for step in range(6):
        actions = rng.uniform([-0.5, -1.0], [0.5, 1.0], size=(n, 2))
        obs, rewards, terminated, truncated, info = vec.step(actions)
        if step < 5:
            for i, env in enumerate(singles):
                o, r, te, tr, inf = env.step(actions[i])
                assert np.array_equal(obs["rgb"][i], o["rgb"]) and np.array_equal(obs["depth"][i], o["depth"])
                assert (terminated[i], truncated[i]) == (te, tr)
    assert truncated.sum() == 0  # step 6 is the autoreset step after truncation at 5
    assert vec.action_space.shape == (n, 2)


def test_make_vec_sync_and_vector_entry_point(world):
    sync = gym.make_vec("WorldFM-v0", num_envs=2, vectorization_mode="sync", world=world, width=16, height=12)
    obs, _ = sync.reset(seed=0)
    obs, *_ = sync.step(np.zeros((2, 2), np.float32))
    assert obs["rgb"].shape == (2, 12, 16, 3)
    batched = gym.make_vec("WorldFM-v0", num_envs=3, vectorization_mode="vector_entry_point", world=world,
                           width=16, height=12)
    assert isinstance(batched.unwrapped, WorldFMVectorEnv)
    obs, _ = batched.reset(seed=0)
    obs, *_ = batched.step(np.zeros((3, 2), np.float32))
    assert obs["depth"].shape == (3, 12, 16)


def test_example_policy_explores_without_collisions(world_path):
    spec = importlib.util.spec_from_file_location("explore_gym", ROOT / "examples" / "explore_gym.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.explore(world_path, steps=300, seed=3, width=64, height=48)
    print(f"example: drove {result['distance_m']:.1f} m, saw {result['seen_m2']:.1f} m2, "
          f"{result['collisions']} collisions")
    assert result["collisions"] == 0
    assert result["distance_m"] > 5.0
