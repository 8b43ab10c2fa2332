/// Decoded rows as slots: which fields of a source the queries over it read, and where each lands.
///
/// A query references a handful of a row's fields (`content.category`, `click`, `expose`) plus the
/// few the engine needs for time and identity (`minute`, `final`, `content_id`, `user_id`, `rev`,
/// or `ts` and `event_id` for events). A `RowLayout` gives each such path a slot; `RowBatch`
/// decodes JSON straight into those slots, skipping every other field without building it, and
/// the engine's expressions read slots by index instead of looking names up in dictionaries. One
/// layout built from several queries lets them all share one decoded stream (the dashboard's
/// feeds over one topic do).
public final class RowLayout: Sendable {
    /// Slot i holds the value at `paths[i]` (null when the row lacks it or a parent is no object).
    public let paths: [[String]]
    public var width: Int { paths.count }
    let slots: [[String]: Int]
    let tree: FieldTree

    /// The fields every given query reads; the first query's time field (`minute` or `ts`) first.
    public convenience init(_ queries: [Query]) {
        self.init(plans: queries.map(\.plan))
    }

    convenience init(plans: [Plan]) {
        self.init(paths: plans.flatMap { $0.enginePaths + $0.fieldPaths })
    }

    /// A layout of exactly these paths (for rows read field by field, as the tests do).
    public init(paths: [[String]]) {
        var slots: [[String]: Int] = [:]
        var unique: [[String]] = []
        for p in paths where !p.isEmpty && slots[p] == nil {
            slots[p] = unique.count
            unique.append(p)
        }
        self.paths = unique
        self.slots = slots
        self.tree = FieldTree(unique)
    }

    /// The slot of a field path, if the layout has it.
    public func slot(_ path: [String]) -> Int? { slots[path] }
    public func slot(_ name: String) -> Int? { slots[[name]] }

    /// True when every field these queries read has a slot here.
    public func covers(_ query: Query) -> Bool { covers(query.plan) }

    func covers(_ plan: Plan) -> Bool {
        (plan.enginePaths + plan.fieldPaths).allSatisfy { slots[$0] != nil }
    }

    /// The plan with every field reference turned into its slot. The layout must cover the plan.
    func bind(_ plan: Plan) -> Plan {
        plan.rewritingExpressions { e in
            e.rewritingFields { path in
                guard let s = slots[path] else { preconditionFailure("layout lacks \(path) for \(plan.sources)") }
                return .slot(s)
            }
        }
    }
}

/// A batch of decoded rows: `count` rows of `layout.width` slots each, row-major, reused across
/// polls (`removeAll` keeps the storage), so decoding allocates nothing per row beyond the
/// values themselves (short strings are stored inline).
public struct RowBatch: Sendable {
    public let layout: RowLayout
    public private(set) var count = 0
    /// Input partition per row (see `QueryEngine.ingest(_:partitions:)`); nil: one partition.
    public private(set) var partitions: [Int]?
    var values: [Value] = []

    public init(layout: RowLayout, capacity: Int = 0) {
        self.layout = layout
        values.reserveCapacity(capacity * layout.width)
    }

    /// Rows given as objects (tests, and readers that already hold dictionaries).
    public init(layout: RowLayout, rows: [[String: Value]], partitions: [Int]? = nil) {
        self.init(layout: layout, capacity: rows.count)
        for (i, row) in rows.enumerated() { append(row, partition: partitions.map { i < $0.count ? $0[i] : 0 }) }
    }

    public var isEmpty: Bool { count == 0 }

    public mutating func removeAll() {
        values.removeAll(keepingCapacity: true)
        partitions?.removeAll(keepingCapacity: true)
        count = 0
    }

    /// Decodes one JSON object into the next row. False, and nothing added, when the bytes are not
    /// exactly one valid JSON object.
    @discardableResult
    public mutating func append(json bytes: UnsafeRawBufferPointer, partition: Int? = nil) -> Bool {
        let width = layout.width
        let base = values.count
        values.append(contentsOf: repeatElement(Value.null, count: width))
        let tree = layout.tree
        let ok = values.withUnsafeMutableBufferPointer { all in
            JSONParser.parseObject(bytes, tree: tree, into: UnsafeMutableBufferPointer(rebasing: all[base..<(base + width)]))
        }
        guard ok else {
            values.removeLast(width)
            return false
        }
        appended(partition)
        return true
    }

    /// Adds a row given as an object: each slot takes the value at its path.
    public mutating func append(_ row: [String: Value], partition: Int? = nil) {
        for path in layout.paths {
            var v: Value = row[path[0]] ?? .null
            for key in path.dropFirst() { v = v[key] }
            values.append(v)
        }
        appended(partition)
    }

    /// Drops the last row (a reader's own filter, e.g. rows older than its start time).
    public mutating func removeLast() {
        precondition(count > 0)
        values.removeLast(layout.width)
        partitions?.removeLast()
        count -= 1
    }

    private mutating func appended(_ partition: Int?) {
        if let partition {
            if partitions == nil { partitions = [Int](repeating: 0, count: count) }
            partitions!.append(partition)
        } else {
            partitions?.append(0)
        }
        count += 1
    }

    /// The value in row `row`'s slot `slot`.
    public subscript(row: Int, slot: Int) -> Value {
        values[row * layout.width + slot]
    }

    /// The value of a field of row `row`, or null when the layout does not read that field.
    public func value(_ row: Int, _ name: String) -> Value {
        guard let s = layout.slot(name) else { return .null }
        return self[row, s]
    }
}

/// The layout's paths as a trie the decoder walks: node 0 is the row; each node's children are
/// the keys read below it, stored contiguously so the decoder matches a key by a short scan. The
/// tables are plain memory (immutable after init): the decoder reads them per key of every row.
final class FieldTree: @unchecked Sendable {
    /// Per node: the slot of its whole value or -1 (only its children are read), its first edge
    /// and its edge count.
    private let slot, firstEdge, edgeCount: UnsafeMutableBufferPointer<Int>
    /// Per edge: where its key's bytes start in `keyBytes`, their count, and the child node.
    private let keyStart, keyLength, target: UnsafeMutableBufferPointer<Int>
    private let keyBytes: UnsafeMutableBufferPointer<UInt8>
    private let keyNames: [String]

    init(_ paths: [[String]]) {
        // Build a nested map first, then lay it out breadth-first so edges stay contiguous.
        final class Draft {
            var slot = -1
            var children: [(String, Draft)] = []
            func child(_ k: String) -> Draft {
                if let c = children.first(where: { $0.0 == k }) { return c.1 }
                let d = Draft()
                children.append((k, d))
                return d
            }
        }
        let root = Draft()
        for (slot, path) in paths.enumerated() {
            var d = root
            for k in path { d = d.child(k) }
            d.slot = slot
        }
        var queue = [root]
        var nodes: [(slot: Int, first: Int, count: Int)] = [(-1, 0, 0)]
        var edges: [(start: Int, length: Int, target: Int)] = []
        var bytes: [UInt8] = []
        var names: [String] = []
        var head = 0
        while head < queue.count {
            let d = queue[head]
            nodes[head].first = edges.count
            nodes[head].count = d.children.count
            for (k, c) in d.children {
                let utf8 = Array(k.utf8)
                edges.append((bytes.count, utf8.count, nodes.count))
                bytes += utf8
                names.append(k)
                nodes.append((c.slot, 0, 0))
                queue.append(c)
            }
            head += 1
        }
        func table<T>(_ values: [T]) -> UnsafeMutableBufferPointer<T> {
            let t = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, values.count))
            _ = t.initialize(from: values)
            return t
        }
        slot = table(nodes.map(\.slot))
        firstEdge = table(nodes.map(\.first))
        edgeCount = table(nodes.map(\.count))
        keyStart = table(edges.map(\.start))
        keyLength = table(edges.map(\.length))
        target = table(edges.map(\.target))
        keyBytes = table(bytes)
        keyNames = names
    }

    deinit {
        for t in [slot, firstEdge, edgeCount, keyStart, keyLength, target] { t.deallocate() }
        keyBytes.deallocate()
    }

    /// The slot of `node`'s whole value, or -1.
    @inline(__always) func slot(_ node: Int) -> Int { slot[node] }
    @inline(__always) func hasChildren(_ node: Int) -> Bool { edgeCount[node] > 0 }

    /// The child of `node` reached by the key in `bytes[start..<end]`, or -1.
    @inline(__always)
    func child(of node: Int, key bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Int {
        let length = end - start
        let first = firstEdge[node]
        for e in first..<(first + edgeCount[node]) where keyLength[e] == length {
            let ks = keyStart[e]
            var j = 0
            while j < length && keyBytes[ks + j] == bytes[start + j] { j += 1 }
            if j == length { return target[e] }
        }
        return -1
    }

    /// The child of `node` reached by `key` (a key that held escapes), or -1.
    func child(of node: Int, named key: String) -> Int {
        let first = firstEdge[node]
        for e in first..<(first + edgeCount[node]) where keyNames[e] == key { return target[e] }
        return -1
    }

    /// Fills `node`'s slot and every slot below it from `value` (its parts, or null).
    func assign(_ value: Value, to node: Int, _ out: UnsafeMutableBufferPointer<Value>) {
        if slot[node] >= 0 { out[slot[node]] = value }
        let first = firstEdge[node]
        for e in first..<(first + edgeCount[node]) { assign(value[keyNames[e]], to: target[e], out) }
    }
}

extension Plan {
    /// The fields the engine itself reads for time and identity.
    var enginePaths: [[String]] {
        events ? [["ts"], ["event_id"]] : [["minute"], ["final"], ["content_id"], ["user_id"], ["rev"]]
    }

    /// Every field path the plan's expressions reference (repeats included).
    var fieldPaths: [[String]] {
        var out: [[String]] = []
        _ = rewritingExpressions { e in
            e.forEachField { out.append($0) }
            return e
        }
        return out
    }

    /// The plan with `f` applied to each of its expressions: WHERE, the group keys, the aggregates'
    /// arguments and sequence expressions, the outputs, HAVING and ORDER BY.
    func rewritingExpressions(_ f: (CExpr) -> CExpr) -> Plan {
        var p = self
        p.filter = filter.map(f)
        p.keys = keys.map(f)
        p.aggregates = aggregates.map { spec in
            var s = spec
            s.argument = spec.argument.map(f)
            if var seq = spec.sequence {
                seq.actor = f(seq.actor)
                seq.conditions = seq.conditions.map(f)
                seq.page = seq.page.map(f)
                s.sequence = seq
            }
            return s
        }
        p.outputs = outputs.map(f)
        p.having = having.map(f)
        p.order = order.map { var o = $0; o.expr = f(o.expr); return o }
        return p
    }
}

extension CExpr {
    /// This expression with each `.field` replaced.
    func rewritingFields(_ f: ([String]) -> CExpr) -> CExpr {
        func r(_ e: CExpr) -> CExpr { e.rewritingFields(f) }
        switch self {
        case .field(let p): return f(p)
        case .literal, .slot, .key, .aggregate, .output, .windowStart, .windowEnd: return self
        case .negate(let e): return .negate(r(e))
        case .not(let e): return .not(r(e))
        case .arith(let op, let a, let b): return .arith(op, r(a), r(b))
        case .compare(let op, let a, let b): return .compare(op, r(a), r(b))
        case .and(let a, let b): return .and(r(a), r(b))
        case .or(let a, let b): return .or(r(a), r(b))
        case .inSet(let e, let set, let hasNull, let negated): return .inSet(r(e), set, listHasNull: hasNull, negated: negated)
        case .inList(let e, let list, let negated): return .inList(r(e), list.map(r), negated: negated)
        case .between(let e, let lo, let hi, let negated): return .between(r(e), r(lo), r(hi), negated: negated)
        case .like(let e, let p, let negated): return .like(r(e), p, negated: negated)
        case .likeDynamic(let e, let p, let negated): return .likeDynamic(r(e), r(p), negated: negated)
        case .isNull(let e, let negated): return .isNull(r(e), negated: negated)
        case .coalesce(let list): return .coalesce(list.map(r))
        case .lower(let e): return .lower(r(e))
        case .upper(let e): return .upper(r(e))
        case .round(let e, let d): return .round(r(e), d.map(r))
        case .conversion(let e): return .conversion(r(e))
        }
    }

    func forEachField(_ body: ([String]) -> Void) {
        _ = rewritingFields { body($0); return .literal(.null) }
    }
}
