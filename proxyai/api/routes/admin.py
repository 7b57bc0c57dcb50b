"""``POST /admin/users``: create a user and show its API key once (stored hashed)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, field_validator

from proxyai.api.deps import ADMIN_ONLY, BAD_INPUT, JSON_BODY, Ctx, require_admin
from proxyai.api.schemas import NewUser
from proxyai.api.text import bad_character

router = APIRouter(tags=["admin"])


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        """Printable text, not blank (a NUL, say, is refused here: PostgreSQL cannot store it)."""
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        bad = bad_character(value)
        if bad:
            raise ValueError(f"has a character that is not printable text ({bad})")
        return value


@router.post(
    "/admin/users",
    response_model=NewUser,
    status_code=201,
    dependencies=[Depends(require_admin)],
    responses={**ADMIN_ONLY, **JSON_BODY, **BAD_INPUT},
)
def create_user(ctx: Ctx, body: UserIn) -> NewUser:
    user, key = ctx.store.create_user(body.name)
    return NewUser(user_id=user.id, name=user.name, api_key=key)
