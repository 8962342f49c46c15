"""The file contract between our NIR writer and our reader: where our metadata lives and how it is coded.

``converters.nir.export`` writes, under ``META_KEY`` on the graph and on every node it makes, a JSON
string (``encode_meta``) whose numpy arrays are tagged so that ``decode_meta`` gives them back as
arrays of the same dtype; the graph's carries ``"format": FORMAT``. ``converters.nir.read`` and
``lmu2neuro inspect`` recognise our files by exactly that.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

FORMAT = "lmu2neuro.nir/1"
META_KEY = "lmu2neuro"  # every node's project metadata lives under this key (a JSON string + arrays)


# -- metadata codec: JSON for structure, numpy arrays tagged so they come back as arrays ---------
def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "detach"):  # a torch tensor left in an origin dict
        return _to_jsonable(obj.detach().cpu().numpy())
    return obj


def _from_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__", "dtype"}:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: _from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_jsonable(v) for v in obj]
    return obj


def encode_meta(d: dict) -> str:
    return json.dumps(_to_jsonable(d), sort_keys=True)


def decode_meta(s: Any) -> dict:
    if isinstance(s, bytes):
        s = s.decode("utf-8")
    return _from_jsonable(json.loads(s))
