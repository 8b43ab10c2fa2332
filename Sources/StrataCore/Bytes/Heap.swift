/// Binary-heap operations on a plain array; `above(a, b)` is true when `a` belongs nearer the top.
public enum BinaryHeap {
    /// Appends `element` and sifts it up to its place.
    @inlinable
    public static func push<T>(_ element: T, onto heap: inout [T], above: (T, T) -> Bool) {
        heap.append(element)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard above(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes the top element (nothing when the heap is empty).
    @inlinable
    public static func removeTop<T>(_ heap: inout [T], above: (T, T) -> Bool) {
        guard let last = heap.popLast() else { return }
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(&heap, from: 0, above: above)
    }

    /// Replaces the top element of a non-empty heap with `element` and sifts it down.
    @inlinable
    public static func replaceTop<T>(_ heap: inout [T], with element: T, above: (T, T) -> Bool) {
        heap[0] = element
        siftDown(&heap, from: 0, above: above)
    }

    /// Moves the element at `start` down until neither child belongs above it.
    @inlinable
    public static func siftDown<T>(_ heap: inout [T], from start: Int, above: (T, T) -> Bool) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < heap.count, above(heap[l], heap[best]) { best = l }
            if r < heap.count, above(heap[r], heap[best]) { best = r }
            if best == i { return }
            heap.swapAt(i, best)
            i = best
        }
    }
}
