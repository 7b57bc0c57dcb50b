"""``POST /admin/users``: create a user and show its API key once (stored hashed)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from proxyai.api.deps import Ctx, require_admin
from proxyai.api.schemas import NewUser

router = APIRouter(tags=["admin"])


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


@router.post("/admin/users", response_model=NewUser, status_code=201, dependencies=[Depends(require_admin)])
def create_user(ctx: Ctx, body: UserIn) -> NewUser:
    user, key = ctx.store.create_user(body.name.strip())
    return NewUser(user_id=user.id, name=user.name, api_key=key)
