"""archlab's training data stream, reproduced number for number, so that exact.py can replay
archlab's training run step by step in torch (same initial parameters, same batches).

This is deliberately a *port* (unlike pt_data.py, which is written from the task definitions):
  * rand 0.9 `SmallRng` on 64-bit = Xoshiro256++ seeded by SplitMix64 (`seed_from_u64`);
  * `random::<f64>()` = (next_u64 >> 11) * 2^-53;
  * `random_range(lo..hi)` over usize with hi <= 2^32: rand's UniformInt<u32>
    `sample_single_inclusive` (Canon's method, biased variant: one extra draw when the low
    word of the first product exceeds 2^32 - range);
  * trainer/src/data.rs: `Stream::new` (seed ^ split offset), `next_batch` (one f64 draw to
    pick the task, then the examples), `mqar` (Zoology layout), `text_window`, `read_split`.
exact.py checks it against archlab's dumped first batch before using it.
"""

from __future__ import annotations

from pathlib import Path

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1
SPLIT_OFFSET = {"train": 0x7261_696E, "val": 0x7661_6C69, "test": 0x7465_7374}


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & MASK64


class SmallRng:
    """rand 0.9 SmallRng (Xoshiro256PlusPlus) on a 64-bit target."""

    def __init__(self, seed: int):
        state = seed & MASK64
        s = []
        for _ in range(4):
            state = (state + 0x9E3779B97F4A7C15) & MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            s.append(z ^ (z >> 31))
        self.s = s

    def next_u64(self) -> int:
        s = self.s
        res = (_rotl((s[0] + s[3]) & MASK64, 23) + s[0]) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return res

    def next_u32(self) -> int:
        return self.next_u64() >> 32

    def random_f64(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def random_range(self, low: int, high: int) -> int:
        """`random_range(low..high)` for usize (high <= 2^32)."""
        assert low < high and high <= (1 << 32)
        rng = (high - 1 - low + 1) & MASK32
        if rng == 0:
            return low + self.next_u32()
        prod = self.next_u32() * rng
        result, lo = prod >> 32, prod & MASK32
        if lo > ((-rng) & MASK32):
            hi2 = (self.next_u32() * rng) >> 32
            if lo + hi2 > MASK32:
                result += 1
        return low + result


def _distinct(rng: SmallRng, low: int, high: int, count: int) -> list[int]:
    pool = list(range(low, high))
    count = min(count, len(pool))
    for index in range(count):
        swap = rng.random_range(index, len(pool))
        pool[index], pool[swap] = pool[swap], pool[index]
    return pool[:count]


def _weighted_distinct(rng: SmallRng, weights: list[float], count: int) -> list[int]:
    remaining = list(enumerate(weights))
    chosen = []
    for _ in range(count):
        total = 0.0
        for _, w in remaining:
            total += w
        pick = rng.random_f64() * total
        index = len(remaining) - 1
        for position, (_, w) in enumerate(remaining):
            if pick < w:
                index = position
                break
            pick -= w
        # Vec::swap_remove
        item = remaining[index]
        last = remaining.pop()
        if index < len(remaining):
            remaining[index] = last
        chosen.append(item[0])
    return chosen


def _power_law(slots: int, a: float) -> list[float]:
    return [a * float(g) ** (a - 1.0) for g in range(1, slots + 1)]


def mqar(rng: SmallRng, vocab: int, seq_len: int, pairs: int, power_a: float = 0.01):
    half = vocab // 2
    context = 2 * pairs
    inputs = [0] * seq_len
    targets = [0] * seq_len
    mask = [0.0] * seq_len
    keys = _distinct(rng, 1, half, pairs)
    values = _distinct(rng, half, vocab, pairs)
    for i, (k, v) in enumerate(zip(keys, values)):
        inputs[2 * i] = k
        inputs[2 * i + 1] = v
    slots = max(seq_len - context, 0) // 2
    chosen = _weighted_distinct(rng, _power_law(slots, power_a), min(pairs, slots))
    for i, slot in enumerate(chosen):
        pos = context + 2 * slot
        inputs[pos] = keys[i]
        targets[pos] = values[i]
        mask[pos] = 1.0
    for i in range(seq_len):
        if inputs[i] == 0:
            inputs[i] = rng.random_range(0, vocab)
    for i in range(seq_len):
        if mask[i] == 0.0:
            targets[i] = inputs[i + 1] if i + 1 < seq_len else 0
    return inputs, targets, mask


def read_split(paths, split: str) -> bytes:
    data = b"".join(Path(p).read_bytes() for p in paths)
    n = len(data)
    start, end = {"train": (0, n * 90 // 100), "val": (n * 90 // 100, n * 95 // 100),
                  "test": (n * 95 // 100, n)}[split]
    return data[start:end]


def text_window(rng: SmallRng, data: bytes, seq_len: int):
    start = rng.random_range(0, len(data) - seq_len - 1)
    seq = list(data[start:start + seq_len + 1])
    return seq[:-1], seq[1:], [1.0] * seq_len


class Stream:
    """One-task archlab Stream (`tasks: [one task]`, weight 1)."""

    def __init__(self, task: dict, vocab: int, seq_len: int, split: str, seed: int):
        self.task, self.vocab, self.seq_len = task, vocab, seq_len
        self.rng = SmallRng(seed ^ SPLIT_OFFSET[split])
        if task["kind"] == "text":
            self.data = read_split(task["paths"], split)

    def example(self):
        t = self.task
        if t["kind"] == "mqar":
            return mqar(self.rng, self.vocab, self.seq_len, t["num_kv_pairs"],
                        t.get("power_a", 0.01))
        if t["kind"] == "text":
            return text_window(self.rng, self.data, self.seq_len)
        raise ValueError(t["kind"])

    def next_batch(self, batch_size: int):
        """Flattened (inputs, targets, mask), [B*T] each, as archlab's Batch (training)."""
        self.rng.random_f64()  # the task pick (one task: always task 0)
        return self.batch_of(batch_size)

    def batch_of(self, batch_size: int):
        """A batch without the task pick, as `Stream::batch_of` (evaluation)."""
        xs, ys, ms = [], [], []
        for _ in range(batch_size):
            x, y, m = self.example()
            xs += x
            ys += y
            ms += m
        return xs, ys, ms
