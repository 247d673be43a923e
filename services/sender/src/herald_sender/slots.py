"""A pool of provider-call slots that can be taken several at a time.

The worker claims messages only for slots it already holds, so a claimed message is handed
to the provider at once: nothing claimed waits in memory where a delete or an end could no
longer stop it.
"""

from __future__ import annotations

import asyncio


class Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._changed = asyncio.Condition()

    @property
    def free(self) -> int:
        return self._free

    async def take(self, wanted: int, at_least: int) -> int:
        """Wait until ``min(wanted, at_least)`` slots are free, then take up to ``wanted``.

        ``at_least`` keeps claims from shrinking to one message each under full load.
        """
        need = max(1, min(wanted, at_least, self.size))
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= need)
            taken = min(self._free, wanted)
            self._free -= taken
            return taken

    async def give(self, count: int = 1) -> None:
        if count <= 0:
            return
        async with self._changed:
            self._free += count
            self._changed.notify_all()
