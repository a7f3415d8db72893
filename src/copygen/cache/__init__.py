"""The RESULT cache: finished CopyResults by brief (L1 in process, L2 on Redis), not the KV
cache of the model (that is engine/model/kv.py)."""
