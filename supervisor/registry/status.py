"""Whether an institution may train: suspended and expelled ones may not start anything."""

from __future__ import annotations

from storage.types import InstitutionStatus, Role
from supervisor.auth import Principal, can_write_institution
from supervisor.context import Context
from supervisor.errors import Forbidden


class InstitutionNotActive(Forbidden):
    """Suspended and expelled institutions cannot start sessions or classes."""


async def ensure_active(ctx: Context, institution_id: int) -> None:
    """Raise 403 `institution_suspended` / `institution_expelled` unless active."""
    inst = await ctx.db(ctx.storage.registry.get_institution, institution_id)
    if inst.status is not InstitutionStatus.active:
        raise InstitutionNotActive(
            f"the institution is {inst.status.value}: it cannot start training",
            reason=f"institution_{inst.status.value}",
        )


async def ensure_may_register(ctx: Context, p: Principal, institution_id: int) -> None:
    """The institution's registration duties, for an institution that may still train: a
    suspended or expelled institution's operators can read, but create nothing."""
    can_write_institution(p, institution_id)
    if p.role is Role.operator:
        await ensure_active(ctx, institution_id)
