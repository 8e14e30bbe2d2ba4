"""ed25519 public key from a seed, through libsodium via ctypes (the test
machine has libsodium; no Python crypto package is needed)."""
import ctypes
import ctypes.util

_lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
_lib.sodium_init()


def public_key_hex(seed_hex):
    seed = bytes.fromhex(seed_hex)
    pk = ctypes.create_string_buffer(32)
    sk = ctypes.create_string_buffer(64)
    if _lib.crypto_sign_seed_keypair(pk, sk, seed) != 0:
        raise ValueError("bad seed")
    return pk.raw.hex()
