"""ed25519 through libsodium via ctypes (the test machine has libsodium; no
Python crypto package is needed): public keys from seeds, signatures."""
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


def key_file_public(path):
    """The public key (bytes) of a muri key file."""
    with open(path) as f:
        return bytes.fromhex(public_key_hex(f.read().split()[1]))


def verify(pk, sig, msg):
    """True if sig is pk's ed25519 signature over msg."""
    if len(sig) != 64 or len(pk) != 32:
        return False
    return _lib.crypto_sign_verify_detached(sig, msg, ctypes.c_ulonglong(len(msg)), pk) == 0


def keypair_from_seed(seed):
    """(public key, secret key) bytes of a 32-byte seed."""
    pk = ctypes.create_string_buffer(32)
    sk = ctypes.create_string_buffer(64)
    if _lib.crypto_sign_seed_keypair(pk, sk, seed) != 0:
        raise ValueError("bad seed")
    return pk.raw, sk.raw


def sign(sk, msg):
    sig = ctypes.create_string_buffer(64)
    _lib.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), sk)
    return sig.raw


def write_key_file(path, seed):
    import os
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("muri-ed25519-seed " + seed.hex() + "\n")
