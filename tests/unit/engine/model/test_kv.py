"""The KV cache's row and position reshapes, on random tensors (no model)."""

from __future__ import annotations

import torch

from copygen.engine.model.kv import GrowingLayer, KVCache, pad_left


def test_kv_layer_reshapes_the_batch_in_place() -> None:
    torch.manual_seed(2)
    layer = GrowingLayer()
    keys, values = torch.randn(4, 2, 5, 3), torch.randn(4, 2, 5, 3)
    layer.update(keys, values)
    buffer = layer.keys.data_ptr()  # the first update built the buffer; keys are a view of it
    # rows 0 and 2 leave; row 3 moves into place 0, row 1 stays
    order = [3, 1]
    layer.keep_rows(order, torch.tensor(order))
    torch.testing.assert_close(layer.keys, keys[order])
    torch.testing.assert_close(layer.values, values[order])
    assert layer.keys.data_ptr() == buffer  # no new tensor
    joiner_keys, joiner_values = torch.randn(2, 2, 3, 3), torch.randn(2, 2, 3, 3)
    layer.append_rows(joiner_keys, joiner_values)  # narrower: right-aligned, zeros on the left
    assert layer.keys.data_ptr() == buffer
    torch.testing.assert_close(layer.keys[2:, :, 2:], joiner_keys)
    torch.testing.assert_close(layer.values[2:, :, 2:], joiner_values)
    assert not layer.keys[2:, :, :2].any()
    step_keys, step_values = torch.randn(4, 2, 1, 3), torch.randn(4, 2, 1, 3)
    out_keys, out_values = layer.update(step_keys, step_values)
    assert out_keys.data_ptr() == buffer  # appended in place, not rebuilt
    torch.testing.assert_close(out_keys[:2, :, :5], keys[order])
    torch.testing.assert_close(out_keys[:, :, 5:], step_keys)
    torch.testing.assert_close(out_values[:, :, 5:], step_values)
    wider_keys, wider_values = torch.randn(1, 2, 9, 3), torch.randn(1, 2, 9, 3)
    layer.append_rows(wider_keys, wider_values)  # wider than the batch: padded copy
    assert layer.keys.shape == (5, 2, 9, 3)
    torch.testing.assert_close(layer.keys[:4, :, 3:], out_keys)
    torch.testing.assert_close(layer.keys[4:], wider_keys)


def test_a_replaced_layer_is_rebuilt_into_a_buffer_on_the_next_update() -> None:
    torch.manual_seed(4)
    layer = GrowingLayer()
    keys, values = torch.randn(3, 2, 4, 3), torch.randn(3, 2, 4, 3)
    layer.update(keys, values)
    layer.drop_leading(1)  # a new tensor, not a view of the buffer
    step = torch.randn(3, 2, 1, 3)
    out_keys, _ = layer.update(step, step)
    torch.testing.assert_close(out_keys[:, :, :3], keys[:, :, 1:])
    torch.testing.assert_close(out_keys[:, :, 3:], step)
    again, _ = layer.update(step, step)
    assert again.data_ptr() == out_keys.data_ptr()  # the rebuilt buffer is used in place


def test_the_cache_keeps_fans_out_and_gathers_rows_of_every_layer() -> None:
    torch.manual_seed(5)
    kv = KVCache()
    layers = kv.layers_for(2)
    assert len(kv.layers) == 2
    keys = [torch.randn(2, 1, 4, 2) for _ in layers]
    for layer, k in zip(layers, keys, strict=True):
        layer.update(k, k)
    kv.fan_out(torch.tensor([1, 1, 0]))
    for layer, k in zip(kv.layers, keys, strict=True):
        torch.testing.assert_close(layer.keys, k[[1, 1, 0]])
    kv.keep([2, 0])
    for layer, k in zip(kv.layers, keys, strict=True):
        torch.testing.assert_close(layer.keys, k[[0, 1]])
    kv.gather_positions(torch.tensor([[0, 2], [1, 3]]))
    for layer, k in zip(kv.layers, keys, strict=True):
        torch.testing.assert_close(layer.keys[0], k[0][:, [0, 2]])
        torch.testing.assert_close(layer.keys[1], k[1][:, [1, 3]])
    stored = kv.prompt_kv(1, [(0, 1), (1, 2)])
    assert len(stored) == 2
    torch.testing.assert_close(stored[0][0], kv.layers[0].keys[1:2])


def test_prefixes_are_right_aligned_and_missing_ones_are_zeros() -> None:
    entry = [(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2) * 2)]
    kv = KVCache.from_prefixes([(2, entry), (0, None)], width=3)
    [layer] = kv.layers
    assert layer.keys.shape == (2, 1, 3, 2)
    assert layer.keys[0, 0, :, 0].tolist() == [0.0, 1.0, 1.0]
    assert layer.values[0, 0, :, 0].tolist() == [0.0, 2.0, 2.0]
    assert not layer.keys[1].any()
    assert pad_left(torch.ones(1, 2), 4, 1).tolist() == [[0.0, 0.0, 1.0, 1.0]]
