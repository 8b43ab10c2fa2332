import StrataCore

/// Aggregate states that can both add and retract a row's value, so a newer rev of a row can
/// replace the older one exactly (upsert semantics).
///
/// - count/sum/avg retract by subtraction. Integer sums use wrapping arithmetic, which is exactly
///   invertible; float sums reset to exactly 0 when their last float value leaves.
/// - min/max keep a multiset (value -> count) plus a lazily cleaned heap, so retracting the current
///   extreme falls back to the next live value.
/// - count_distinct keeps a `DistinctCounter` fed with 64-bit value hashes (see HyperLogLog.swift).
protocol Accumulator: AnyObject {
    func add(_ v: Value)
    func remove(_ v: Value)
    /// A new revision's value in place of the old one's (one call on the per-row path).
    func replace(_ old: Value, with new: Value)
    var result: Value { get }
}

extension Accumulator {
    func replace(_ old: Value, with new: Value) {
        remove(old)
        add(new)
    }
}

enum Accumulators {
    static func make(_ spec: AggregateSpec, distinctThreshold: Int, budget: HeldBudget) -> any Accumulator {
        if let s = spec.sequence { return SequenceAccumulator(s.kind, budget: budget) }
        let star = spec.argument == nil
        switch spec.kind {
        case .count: return star ? CountStar() : CountNonNull()
        case .sum: return Sum(average: false)
        case .avg: return Sum(average: true)
        case .min: return Extreme(max: false)
        case .max: return Extreme(max: true)
        case .countDistinct: return Distinct(threshold: distinctThreshold)
        case .exactCountDistinct: return ExactDistinct(budget: budget)
        // The planner always gives these a sequence spec.
        case .sessions, .sessionSeconds, .sessionEvents, .bounceRate, .funnel, .topPaths: return CountStar()
        }
    }
}

final class CountStar: Accumulator {
    var n: Int64 = 0
    func add(_ v: Value) { n += 1 }
    func remove(_ v: Value) { n -= 1 }
    func replace(_ old: Value, with new: Value) {}
    var result: Value { .int(n) }
}

final class CountNonNull: Accumulator {
    var n: Int64 = 0
    func add(_ v: Value) { if !v.isNull { n += 1 } }
    func remove(_ v: Value) { if !v.isNull { n -= 1 } }
    var result: Value { .int(n) }
}

/// sum and avg over numbers; non-numbers are ignored (as NULLs are).
final class Sum: Accumulator {
    let average: Bool
    var n: Int64 = 0
    var doubles: Int64 = 0
    var intSum: Int64 = 0
    var doubleSum: Double = 0

    init(average: Bool) { self.average = average }

    func add(_ v: Value) {
        switch v {
        case .int(let i): n += 1; intSum &+= i
        case .double(let d): n += 1; doubles += 1; doubleSum += d
        default: break
        }
    }

    func replace(_ old: Value, with new: Value) {
        // Integers into integers (counts, sums of counts): no change to n.
        if case .int(let o) = old, case .int(let i) = new {
            intSum = intSum &- o &+ i
            return
        }
        remove(old)
        add(new)
    }

    func remove(_ v: Value) {
        switch v {
        case .int(let i): n -= 1; intSum &-= i
        case .double(let d):
            n -= 1; doubles -= 1
            doubleSum = doubles == 0 ? 0 : doubleSum - d
        default: break
        }
    }

    var result: Value {
        guard n > 0 else { return .null }
        if average { return .double((Double(intSum) + doubleSum) / Double(n)) }
        return doubles == 0 ? .int(intSum) : .double(Double(intSum) + doubleSum)
    }
}

/// min or max over a multiset. The heap may hold values whose count dropped to zero; they are
/// discarded when they reach the top, and the heap is rebuilt when stale entries pile up.
final class Extreme: Accumulator {
    let isMax: Bool
    var counts: [Value: Int] = [:]
    var heap: [Value] = []

    init(max: Bool) { isMax = max }

    /// True when `a` should sit above `b` in the heap.
    @inline(__always) private func above(_ a: Value, _ b: Value) -> Bool {
        let order = Value.order(a, b)
        return isMax ? order > 0 : order < 0
    }

    func add(_ v: Value) {
        if v.isNull { return }
        let c = counts[v] ?? 0
        counts[v] = c + 1
        if c == 0 { push(v) }
    }

    func remove(_ v: Value) {
        if v.isNull { return }
        guard let c = counts[v] else { return }
        counts[v] = c > 1 ? c - 1 : nil
        if heap.count > 2 * counts.count + 32 { heap = []; for key in counts.keys { push(key) } }
    }

    var result: Value {
        while let top = heap.first, counts[top] == nil { popTop() }
        return heap.first ?? .null
    }

    private func push(_ v: Value) {
        BinaryHeap.push(v, onto: &heap, above: above)
    }

    private func popTop() {
        BinaryHeap.removeTop(&heap, above: above)
    }
}

/// exact_count_distinct: refcounted hashes however many, each distinct value counted in the
/// engine's budget (a query limit) while it is held.
final class ExactDistinct: Accumulator {
    private var counter = DistinctCounter(exactThreshold: .max)
    private let budget: HeldBudget
    private var held = 0
    init(budget: HeldBudget) { self.budget = budget }
    func add(_ v: Value) {
        guard case .int(let h) = v else { return }
        counter.add(UInt64(bitPattern: h))
        note()
    }
    func remove(_ v: Value) {
        guard case .int(let h) = v else { return }
        counter.remove(UInt64(bitPattern: h))
        note()
    }
    private func note() {
        let now = Int(counter.count)
        budget.distinctValues += now - held
        held = now
    }
    var result: Value { .int(counter.count) }
    deinit { budget.distinctValues -= held }
}

/// count_distinct: the contribution carries the value's 64-bit hash as `.int(bitPattern)`.
final class Distinct: Accumulator {
    var counter: DistinctCounter
    init(threshold: Int) { counter = DistinctCounter(exactThreshold: threshold) }
    func add(_ v: Value) { if case .int(let h) = v { counter.add(UInt64(bitPattern: h)) } }
    func remove(_ v: Value) { if case .int(let h) = v { counter.remove(UInt64(bitPattern: h)) } }
    var result: Value { .int(counter.count) }
}
