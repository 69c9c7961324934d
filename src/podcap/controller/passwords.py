"""Passwords: argon2id at OWASP's 19 MiB / 2 passes, at most ``HASH_SLOTS`` hashes at once
(each holds ``ARGON2_MEMORY_KIB``), so bad logins cannot take all memory or all threads.
scrypt hashes of earlier releases still verify and are rehashed to argon2id on the next good
login.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

import argon2

from podcap import limits
from podcap.errors import InvalidArgument

_HASHER = argon2.PasswordHasher(time_cost=limits.ARGON2_TIME_COST,
                                memory_cost=limits.ARGON2_MEMORY_KIB, parallelism=1)
_HASH_SLOTS = threading.BoundedSemaphore(limits.HASH_SLOTS)


def hash_password(password: str) -> str:
    with _HASH_SLOTS:
        return _HASHER.hash(password)


def verify_password(password: str, stored: str) -> tuple[bool, bool]:
    """(matches, should be rehashed). Always one full hash, whatever ``stored`` holds."""
    with _HASH_SLOTS:
        if stored.startswith("scrypt$"):
            try:
                _, salt, digest = stored.split("$")
                candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt),
                                           n=2**14, r=8, p=1)
            except ValueError:
                return False, False
            return hmac.compare_digest(candidate.hex(), digest), True
        try:
            _HASHER.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, False
        return True, _HASHER.check_needs_rehash(stored)


def check_rules(password: str) -> None:
    if len(password) < limits.PASSWORD_MIN_CHARS:
        raise InvalidArgument(f"password must have at least {limits.PASSWORD_MIN_CHARS} "
                              "characters")
    if len(password) > limits.PASSWORD_MAX_CHARS:
        raise InvalidArgument(f"password must have at most {limits.PASSWORD_MAX_CHARS} "
                              "characters")
