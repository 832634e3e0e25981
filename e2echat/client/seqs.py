"""Which room sequence numbers were already processed: a floor plus the seqs above it.

Live messages, ``sync`` replies and our own confirmed sends interleave, so seqs do not
arrive in order; a plain "last seq" would either drop the older ones or process some
twice. The floor (everything at or below it is done) is what the store persists and what
``sync`` resumes after; the set holds the processed seqs above the floor.
"""


class SeqWindow:
    """Processed seqs of one room."""

    __slots__ = ("_above", "floor")

    def __init__(self, floor: int = 0) -> None:
        self.floor = floor
        self._above: set[int] = set()

    def done(self, seq: int) -> bool:
        """Whether ``seq`` was processed already."""
        return seq <= self.floor or seq in self._above

    def add(self, seq: int) -> bool:
        """Mark ``seq`` processed; False if it already was (a duplicate to drop)."""
        if seq <= self.floor or seq in self._above:
            return False
        self._above.add(seq)
        self._settle()
        return True

    def advance_to(self, seq: int) -> None:
        """Everything up to ``seq`` is done (a ``synced`` reply: the relay has no more)."""
        if seq > self.floor:
            self.floor = seq
            self._above = {s for s in self._above if s > seq}
        self._settle()

    def _settle(self) -> None:
        while self.floor + 1 in self._above:
            self.floor += 1
            self._above.discard(self.floor)
