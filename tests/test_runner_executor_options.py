"""The runner builds ComfyUI's PromptExecutor with the arguments each supported ComfyUI takes (issue 19): 0.3.64's
executor has ``cache_type`` and ``cache_size``, later ones add ``cache_args``; an unknown keyword crashed
``trackdiffusion run`` on 0.3.64. The real 0.8.0 executor is built by every integration test of the runner."""

from __future__ import annotations

import enum
import types

from trackdiffusion.nodes.runner.executor import Runner, executor_options


class CacheType(enum.Enum):
    CLASSIC = 0
    LRU = 1


class Executor0364:  # ComfyUI 0.3.64's signature
    def __init__(self, server, cache_type=False, cache_size=None):
        self.server, self.cache_type, self.cache_size = server, cache_type, cache_size


class Executor080:  # ComfyUI 0.8.0's signature
    def __init__(self, server, cache_type=False, cache_args=None):
        self.server, self.cache_type, self.cache_args = server, cache_type, cache_args


class ExecutorPositionalOnly:  # a hypothetical core that takes the server alone
    def __init__(self, server):
        self.server = server


def runner_for(executor_class, with_cache_type: bool = True) -> Runner:
    execution = types.SimpleNamespace(PromptExecutor=executor_class)
    if with_cache_type:
        execution.CacheType = CacheType
    return Runner(types.SimpleNamespace(execution=execution))


def test_comfyui_0_3_64_executor_gets_no_cache_args():
    executor = runner_for(Executor0364).new_executor()
    assert executor.cache_type is CacheType.CLASSIC and executor.cache_size is None


def test_newer_executor_gets_the_classic_cache_without_lru_or_ram_pressure():
    executor = runner_for(Executor080).new_executor()
    assert executor.cache_type is CacheType.CLASSIC and executor.cache_args == {"lru": 0, "ram": 0}


def test_an_executor_that_takes_only_the_server_is_still_built():
    assert executor_options(types.SimpleNamespace(PromptExecutor=ExecutorPositionalOnly, CacheType=CacheType)) == {}
    assert runner_for(ExecutorPositionalOnly, with_cache_type=False).new_executor().server is not None
