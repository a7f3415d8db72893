"""The database tables (SQLAlchemy 2.0 declarative). Every change comes with a migration in
migrations/versions/; tests/unit/store checks that the migrations build exactly these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class BrandRow(Base):
    """A tenant's brand. ``version`` rises on every write (optimistic concurrency, ETag)."""

    __tablename__ = "brands"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(100))
    voice: Mapped[str] = mapped_column(Text)
    tone: Mapped[str] = mapped_column(String(60))
    audience: Mapped[str] = mapped_column(String(200))
    preferred_terms: Mapped[list[str]] = mapped_column(JSON)
    forbidden_terms: Mapped[list[str]] = mapped_column(JSON)
    facts: Mapped[list[str]] = mapped_column(JSON)
    examples: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    example_count: Mapped[int] = mapped_column(Integer)
    auto_learn: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_brands_tenant_id", "tenant", "id"),)


class ResponseRow(Base):
    """The variants of one /v1/copy response, kept COPYGEN_FEEDBACK_TTL_DAYS so feedback can
    name them; ``prompt`` is the chat the model saw (for the preference export)."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    brand_id: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(40))
    prompt: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    variants: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class FeedbackRow(Base):
    """One rating of one variant. Ids rise, so they serve as export cursors."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(200))
    copy_id: Mapped[str] = mapped_column(String(40))
    brand_id: Mapped[str | None] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(40))
    prompt: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    variant_index: Mapped[int] = mapped_column(Integer)
    variant_text: Mapped[str] = mapped_column(Text)
    #: The response's other variants, for the rejected side of a preference pair.
    others: Mapped[list[str]] = mapped_column(JSON)
    rating: Mapped[str] = mapped_column(String(8))
    edited_text: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_feedback_tenant_id", "tenant", "id"),
        Index("ix_feedback_brand_id", "brand_id", "id"),
    )


class JobRow(Base):
    """A long batch run in the background. ``owner`` and ``lease_until``: the replica working
    on it and until when; a lease that runs out (a killed process) lets any replica resume.

    ``delivery_*``: its webhook's one delivery, set when the job ends: the id every attempt
    carries, the attempts made, and when the next is due (NULL once delivered or given up; a
    replica making an attempt holds it by moving the due time past the attempt's timeout)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    #: What to generate: the briefs (domain fields, the brand as its id).
    request: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(40))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivery_id: Mapped[str | None] = mapped_column(String(40))
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delivery_due: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_jobs_tenant_status", "tenant", "status"),
        Index("ix_jobs_status_lease", "status", "lease_until"),
        Index("ix_jobs_delivery_due", "delivery_due"),
    )


class JobItemRow(Base):
    """One finished item of a job. The primary key makes an item's result unique: a resumed
    job can never write an item twice."""

    __tablename__ = "job_items"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DeliveryRow(Base):
    """One attempt to deliver a job's webhook, written with its outcome only (``error`` NULL:
    delivered, ``failed``: not); older rows may hold a status or an exception's name, which
    readers fold into the same two outcomes."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime)
