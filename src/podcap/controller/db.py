"""The controller's database: users, tokens, login failures, the audit log, and who owns which
capture.

SQLite in the data dir by default (one controller: sqlite_lock.py refuses a second); any
SQLAlchemy URL works, and PostgreSQL is the one for several replicas (docs/CLUSTER.md).
Capture ownership is kept here, not read from the workload, so authorization never depends on
the container still existing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT_S = 5  # a server database that does not answer: /readyz fails, not hangs
MIGRATION_LOCK_KEY = 0x706F64636170  # "podcap": the advisory lock held while migrating


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | reader
    namespaces: Mapped[str] = mapped_column(String(1024), default="")  # "" = every namespace
    download: Mapped[bool] = mapped_column(Boolean, default=False)  # may read packet data
    created: Mapped[float] = mapped_column(Float, default=0.0)
    password_changed: Mapped[float] = mapped_column(Float, default=0.0)


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    last_used: Mapped[float] = mapped_column(Float)
    created: Mapped[float] = mapped_column(Float)  # the absolute lifetime counts from here


class LoginFailures(Base):
    """Failed logins per key (``user:NAME`` or ``addr:IP``), for back-off and lockout; kept in
    the database so every controller replica sees the same count."""

    __tablename__ = "login_failures"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure: Mapped[float] = mapped_column(Float)
    blocked_until: Mapped[float] = mapped_column(Float)


class AuditEvent(Base):
    """One line of the audit log (controller/audit.py)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    event: Mapped[str] = mapped_column(String(32), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    capture_id: Mapped[str] = mapped_column(String(32))
    workload: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(253))
    bytes: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(String(1024))


class CaptureOwner(Base):
    __tablename__ = "capture_owners"
    capture_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(253), default="")
    created: Mapped[float] = mapped_column(Float)
    # When a replica stopped it (a stop command): another replica whose view still shows it
    # running asks its agent instead (read-your-writes across replicas, service.py _find).
    stopped: Mapped[float | None] = mapped_column(Float, nullable=True)


class CaptureGroup(Base):
    """A capture group (controller/groups.py): a selector, the spec every member uses, and
    who started it. Its members' captures are ordinary captures with their own owner rows."""

    __tablename__ = "capture_groups"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    selector: Mapped[str] = mapped_column(String(8192))  # JSON: workloads, namespace, labels
    spec: Mapped[str] = mapped_column(String(8192))  # JSON: CaptureSpec's fields
    created: Mapped[float] = mapped_column(Float)
    stopped: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_reason: Mapped[str] = mapped_column(String(255), default="")


class GroupMember(Base):
    """One container a group matched: its capture, or why it was skipped (``capture_id``
    empty, ``reason`` set). What names it in the pcapng is kept, so a download still names a
    container that is gone."""

    __tablename__ = "capture_group_members"
    group_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workload_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    capture_id: Mapped[str] = mapped_column(String(32), default="", index=True)
    name: Mapped[str] = mapped_column(String(255))
    node: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(253), default="")
    pod: Mapped[str] = mapped_column(String(253), default="")
    container: Mapped[str] = mapped_column(String(253), default="")
    reason: Mapped[str] = mapped_column(String(1024), default="")  # why not captured
    joined: Mapped[float] = mapped_column(Float)
    # The leader's epoch (controller/leader.py) that claimed the member before starting it:
    # a claim of an older epoch whose start never landed is void once another leader holds.
    claim_epoch: Mapped[int] = mapped_column(BigInteger, default=0)


class Recorder(Base):
    """A flight recorder (controller/recorders.py): a selector whose running containers each
    keep a ring of their recent packets, and how triggers freeze it. Its rings and snapshots
    are captures on the agents (``Capture.recording`` names the recorder)."""

    __tablename__ = "recorders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64), index=True)
    selector: Mapped[str] = mapped_column(String(8192))  # JSON: workloads, namespace, labels
    spec: Mapped[str] = mapped_column(String(8192))  # JSON: the rings' CaptureSpec
    window_s: Mapped[int] = mapped_column(Integer)
    after_s: Mapped[int] = mapped_column(Integer)
    cooldown_s: Mapped[int] = mapped_column(Integer)
    max_snapshots: Mapped[int] = mapped_column(Integer)
    rate_pps: Mapped[int] = mapped_column(Integer, default=0)  # 0: no rate trigger
    drops_per_s: Mapped[int] = mapped_column(Integer, default=0)  # 0: no drop trigger
    alerts: Mapped[str] = mapped_column(String(8192))  # JSON: alert label map, alert names
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[float] = mapped_column(Float)


class RecorderSnapshot(Base):
    """A snapshot a recorder made: an ordinary stopped capture (its own owner row), and what
    froze it."""

    __tablename__ = "recorder_snapshots"
    capture_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recorder_id: Mapped[str] = mapped_column(String(32), index=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    workload_id: Mapped[str] = mapped_column(String(255))
    workload_name: Mapped[str] = mapped_column(String(255))
    namespace: Mapped[str] = mapped_column(String(253), default="")
    node: Mapped[str] = mapped_column(String(253), default="")
    source: Mapped[str] = mapped_column(String(16))  # admin | alert | exit | rate | drops
    reason: Mapped[str] = mapped_column(String(1024))
    triggered: Mapped[float] = mapped_column(Float)
    created: Mapped[float] = mapped_column(Float)


class RecorderTrigger(Base):
    """One trigger of a recorder and what came of it on each member it named: frozen,
    extended (a freeze under way), cooldown, duplicate (an alert delivered again)."""

    __tablename__ = "recorder_triggers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorder_id: Mapped[str] = mapped_column(String(32), index=True)
    time: Mapped[float] = mapped_column(Float, index=True)
    source: Mapped[str] = mapped_column(String(16))
    workload_id: Mapped[str] = mapped_column(String(255), default="")
    workload_name: Mapped[str] = mapped_column(String(255), default="")
    capture_id: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(1024), default="")
    key: Mapped[str] = mapped_column(String(255), default="", index=True)


class AgentRecord(Base):
    """A joined agent (cluster mode). Its certificate's fingerprint is kept so a revoked agent
    stays refused even though its certificate is still signed by the CA."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(253))
    version: Mapped[str] = mapped_column(String(64), default="")
    runtimes: Mapped[str] = mapped_column(String(255), default="")  # comma-separated
    joined: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    cert_fingerprint: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class JoinToken(Base):
    """A join token: the secret is kept as its SHA-256 only (see controller/join_tokens.py)."""

    __tablename__ = "join_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)
    uses_left: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64))


class DownloadTicket(Base):
    """A one-use download link (controller/tickets.py), as the SHA-256 of its secret: in the
    database so a ticket issued by one replica works once on any."""

    __tablename__ = "download_tickets"
    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))  # the session that asked for it
    subject: Mapped[str] = mapped_column(String(64))  # a capture id, or group:<id>
    source: Mapped[str] = mapped_column(String(64), default="")  # who asked: for the audit
    expires: Mapped[float] = mapped_column(Float, index=True)


class Lease(Base):
    """A named lease (controller/leader.py): who holds it, its epoch (raised by every new
    holder: the fencing token) and when it ends, in the database's own time."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)


class ClusterCARecord(Base):
    """The cluster CA shared by every replica (controller/shared_ca.py): the first replica to start
    stores it, the others load it, so any of them can admit a join."""

    __tablename__ = "cluster_ca"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    key_pem: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)


class StartKey(Base):
    """An idempotent start (``Idempotency-Key``): the first request with a key claims it, the
    capture it made is written beside it, and a retry through any replica gets that capture."""

    __tablename__ = "start_keys"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)  # user + client's key
    capture_id: Mapped[str] = mapped_column(String(32), default="")
    created: Mapped[float] = mapped_column(Float, index=True)


def open_db(url: str | None, data_dir: Path) -> sessionmaker:
    url = url or f"sqlite:///{data_dir / 'podcap.db'}"
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:  # a server database: connections dropped by a restart or a proxy are replaced
        fail_fast = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgres") else {}
        engine = create_engine(url, pool_pre_ping=True, connect_args=fail_fast)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a new database starts from empty)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # replicas starting at once: one migrates
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
