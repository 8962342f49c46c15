"""LMU memory: matrices, zero-order hold, and the parallel FFT form against the recurrent step."""

import numpy as np
import pytest
import scipy.linalg
import torch

from lmu2neuro.core.legendre import impulse_response, lmu_discrete, lmu_state_space
from lmu2neuro.models.lmu import LMUMemory


def test_state_space_entries_match_the_definition():
    a, b = lmu_state_space(4)
    # A[i,j] = (2i+1) * (-1 if i < j else (-1)^(i-j+1)); B[i] = (2i+1)(-1)^i
    assert a[0].tolist() == [-1, -1, -1, -1]
    assert a[1].tolist() == [3, -3, -3, -3]
    assert a[2].tolist() == [-5, 5, -5, -5]
    assert a[3].tolist() == [7, -7, 7, -7]
    assert b[:, 0].tolist() == [1, -3, 5, -7]


def test_zoh_is_expm_and_its_integral():
    order, theta = 6, 12.5
    a, b = lmu_state_space(order)
    abar, bbar = lmu_discrete(order, theta)
    np.testing.assert_allclose(abar, scipy.linalg.expm(a / theta), rtol=1e-10, atol=1e-12)
    expected_b = np.linalg.solve(a / theta, (abar - np.eye(order)) @ (b / theta))
    np.testing.assert_allclose(bbar, expected_b, rtol=1e-8, atol=1e-12)


def test_impulse_response_columns_are_powers_of_abar():
    abar, bbar = lmu_discrete(5, 7.0)
    h = impulse_response(5, 7.0, 9)
    np.testing.assert_allclose(h[:, 0], bbar[:, 0])
    np.testing.assert_allclose(h[:, 8], np.linalg.matrix_power(abar, 8) @ bbar[:, 0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("order,theta,steps", [(1, 1.0, 1), (8, 16.0, 37), (64, 128.0, 128), (33, 300.0, 200)])
def test_parallel_and_recurrent_forms_agree_in_float64(order, theta, steps):
    torch.manual_seed(order + steps)
    mem = LMUMemory(order, theta, max_len=64)  # shorter than some inputs: the response extends
    u = torch.randn(3, steps, dtype=torch.float64)
    par = mem(u)
    rec = mem.recurrent(u)
    assert par.shape == (3, steps, order)
    assert torch.max(torch.abs(par - rec)).item() < 1e-10
    # and it is not trivially zero
    assert torch.max(torch.abs(rec)).item() > 1e-3


def test_memory_is_causal():
    mem = LMUMemory(8, 10.0, 20)
    u = torch.zeros(1, 20, dtype=torch.float64)
    u[0, 10] = 1.0
    m = mem(u)
    assert torch.max(m[0, :10].abs()) < 1e-12
    assert torch.max(m[0, 10].abs()) > 0.01


def test_parallel_form_backpropagates():
    mem = LMUMemory(16, 32.0, 32)
    u = torch.randn(2, 32, requires_grad=True)
    mem(u).pow(2).sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0


def test_parallel_gradient_equals_recurrent_gradient():
    torch.manual_seed(9)
    mem = LMUMemory(12, 20.0, 40)
    u = torch.randn(2, 40, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 40, 12, dtype=torch.float64)
    (mem(u) * w).sum().backward()
    g_par = u.grad.clone()
    u.grad = None
    (mem.recurrent(u) * w).sum().backward()
    assert torch.max(torch.abs(g_par - u.grad)).item() < 1e-10
    assert torch.max(torch.abs(g_par)).item() > 1e-3
