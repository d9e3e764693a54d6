"""Durable work on a call after the carrier event that created it: the LLM conversation of an
answered call and the post-call analysis of an ended one.

One row per (call, kind). A worker claims a row (status ``running``, ``owner``, a lease until
``lease_expires_at``), does the slow part outside any transaction, and finishes it in one
short transaction that first re-checks ``owner`` (a fence: a worker whose lease expired and
was taken over writes nothing). A row whose lease expired is claimed again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, UTCDateTime

JOB_KINDS = ("conversation", "analysis")
JOB_STATUSES = ("pending", "running", "done", "failed")


class CallJob(Base):
    __tablename__ = "call_jobs"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"),
                                         primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    owner: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_call_jobs_kind_status_available_at", "kind", "status", "available_at"),
    )
