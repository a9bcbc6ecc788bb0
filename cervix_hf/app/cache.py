"""The tabs' result cache: the last few answers, by content, computed once even when requests race."""

import threading
from collections import OrderedDict


class ResultCache:
    """
    The model's answers for the last `size` inputs, by model and file content, so that moving a threshold decides
    again from the cached answer instead of running the model again. Thread-safe; two requests for the same missing
    entry may both compute it (the same answer), which costs time but never a wrong answer.
    """

    def __init__(self, size: int = 16):
        self.size = size
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key, compute):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value
