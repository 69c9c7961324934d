"""The cluster CA of several controller replicas: one CA, kept in the shared database.

Every replica must admit joins and verify agents with the same CA (a join token ends with its
fingerprint, and agents trust nothing else). With PostgreSQL the first replica to start stores
its CA (supplied, in its data dir, or new) in ``cluster_ca``; every later one loads it from
there, so a replica with an empty data dir (a new pod) needs nothing else. A replica whose
data dir or ``--ca-cert`` holds *another* CA is refused: it would disown the agents the others
admitted. One made a moment ago by a replica that lost the race to store it is thrown away.
The key is then as secret as the database (docs/CLUSTER.md, *Several controllers*); SQLite (one
controller) keeps the CA in the data dir only, as before.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from podcap.controller.db import ClusterCARecord
from podcap.errors import FailedPrecondition
from podcap.pki.ca import ClusterCA

ROW = 1


def shared_ca(sessions: sessionmaker, data_dir: Path, cert: Path | None = None,
              key: Path | None = None) -> ClusterCA:
    stored = _stored(sessions)
    own_files = (data_dir / "ca.crt").exists()
    if stored is not None and cert is None and not own_files:
        return ClusterCA.from_pem(data_dir, stored.cert_pem.encode(), stored.key_pem.encode())
    ca = ClusterCA.load_or_create(data_dir, cert, key)
    made_now = cert is None and not own_files
    if stored is None:
        key_pem, cert_pem = ca.join_pair()
        try:
            with sessions() as db, db.begin():
                db.add(ClusterCARecord(id=ROW, cert_pem=cert_pem.decode(),
                                       key_pem=key_pem.decode(), created=time.time()))
            return ca
        except IntegrityError:  # another replica stored one first
            stored = _stored(sessions)
            assert stored is not None
    if stored.cert_pem.encode() == ca.cert_pem:
        return ca
    if made_now:  # ours was made a moment ago and never used: take the shared one
        for name in ("ca.crt", "ca.key"):
            (data_dir / name).unlink(missing_ok=True)
        return ClusterCA.from_pem(data_dir, stored.cert_pem.encode(), stored.key_pem.encode())
    where = cert or data_dir / "ca.crt"
    raise FailedPrecondition(
        f"the cluster CA in {where} is not the one the other replicas share in the database: "
        "every replica must use the same CA (agents trust only it). Remove this replica's "
        "ca.crt/ca.key to take the shared one, or give every replica the same --ca-cert/"
        "--ca-key")


def _stored(sessions: sessionmaker) -> ClusterCARecord | None:
    with sessions() as db:
        return db.get(ClusterCARecord, ROW)
