"""Networks built without their weights: parameters on the meta device, buffers made for real."""

import threading

import pytest
import torch

from tmlsr_ray.models.meta_device import built_on_meta, holds_meta_tensors, parameters_on_meta


class Windowed(torch.nn.Module):
    """A layer whose constructor computes a buffer (as SwinIR's relative position index) and reads
    a value back (as transformers' drop-path rates)."""

    def __init__(self):
        super().__init__()
        self.rate = torch.linspace(0, 0.1, 3)[1].item()
        self.proj = torch.nn.Linear(4, 4)
        self.register_buffer("index", torch.arange(6).view(2, 3) * 2, persistent=False)


def test_parameters_are_made_on_meta_and_computed_buffers_for_real():
    """With every tensor on meta, a constructor that read a value back failed there and was built
    for real, random weights and all (SwinIR, HAT, DAT, IPT); one that did not kept the buffers
    it computed without data, where a file lacks them."""
    network = built_on_meta(Windowed)
    assert [p.device.type for p in network.parameters()] == ["meta", "meta"]
    assert torch.equal(network.index, torch.tensor([[0, 2, 4], [6, 8, 10]])) and abs(network.rate - 0.05) < 1e-6
    assert holds_meta_tensors(network)
    network.proj.load_state_dict(torch.nn.Linear(4, 4).state_dict(), assign=True)
    assert not holds_meta_tensors(network)


def test_a_network_built_on_another_thread_meanwhile_is_built_for_real():
    started, other_built = threading.Event(), threading.Event()
    other = {}

    def build_other():
        started.wait()
        other["network"] = torch.nn.Linear(4, 4)
        other_built.set()

    def build_here():
        started.set()
        other_built.wait(timeout=10)
        return torch.nn.Linear(4, 4)

    thread = threading.Thread(target=build_other)
    thread.start()
    here = built_on_meta(build_here)
    thread.join()
    assert here.weight.is_meta and not other["network"].weight.is_meta


def test_a_tensor_a_constructor_computed_from_a_parameter_on_meta_is_found():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.doubled = self.proj.weight.detach() * 2  # a plain attribute, in no state dict

    network = built_on_meta(Scaled)
    network.load_state_dict(Scaled().state_dict(), assign=True)
    assert holds_meta_tensors(network)


def test_a_network_built_on_another_thread_is_not_broken_by_a_build_on_meta():
    """Each build on meta added a process-wide parameter-registration hook and removed it after:
    another thread registering a parameter meanwhile (a second model loading, a file recognised)
    was iterating those hooks, and failed with "OrderedDict mutated during iteration"."""
    from torch.nn.modules.module import register_module_parameter_registration_hook

    iterating, resumed = threading.Event(), threading.Event()
    other = {}

    def pause_the_other_thread(module, name, parameter):
        if threading.current_thread() is thread and not iterating.is_set():
            iterating.set()
            resumed.wait(timeout=10)

    def build_other():
        try:
            other["network"] = torch.nn.Linear(4, 4)
        except RuntimeError as exc:
            other["error"] = exc

    def build_here():
        resumed.set()
        thread.join(timeout=10)  # the other thread finishes its network while this one builds
        return torch.nn.Linear(4, 4)

    # a hook after the pausing one: the other thread's iteration has one more to go when it resumes
    handles = [register_module_parameter_registration_hook(hook) for hook in (pause_the_other_thread, lambda *_: None)]
    thread = threading.Thread(target=build_other)
    try:
        thread.start()
        iterating.wait(timeout=10)
        here = built_on_meta(build_here)
    finally:
        for handle in handles:
            handle.remove()
    assert "error" not in other, other.get("error")
    assert here.weight.is_meta and not other["network"].weight.is_meta


def test_a_failed_build_on_meta_leaves_this_threads_tensors_and_parameters_made_for_real():
    class Failing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            raise ValueError("a file that does not fit")

    with pytest.raises(ValueError):
        with parameters_on_meta():
            Failing()
    assert not torch.empty(2).is_meta and not torch.nn.Linear(4, 4).weight.is_meta


def test_a_constructor_that_sets_its_parameters_data_is_built_on_meta():
    """IPT's mean shift sets its weights' ``.data`` in its constructor: torch refused a CPU value
    for a meta parameter, and the network was built for real, random weights and all."""
    class MeanShift(torch.nn.Conv2d):
        def __init__(self):
            super().__init__(3, 3, kernel_size=1)
            self.weight.data = torch.eye(3).view(3, 3, 1, 1)
            self.bias.data = -torch.tensor([0.4, 0.5, 0.6])

    network = built_on_meta(MeanShift)
    assert [p.device.type for p in network.parameters()] == ["meta", "meta"]
    assert list(network.weight.shape) == [3, 3, 1, 1] and not torch.empty(2).is_meta
