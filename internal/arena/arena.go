package arena

// Arena is a set of byte blocks. Blocks are never moved, only added, so a
// slice handed out stays valid (and unchanged) until Reset. The zero value
// is not usable: make one with New. Not safe for concurrent use.
type Arena struct {
	blocks [][]byte
	cur    int // index of the block being filled
	block  int // block size
	keep   int // bytes of blocks kept across Reset
}

// New returns an arena of blockSize-byte blocks that keeps at most keep
// bytes of them across Reset (blocks past that are left to the garbage
// collector). A value larger than a quarter of a block gets an allocation
// of its own, so one large value neither wastes the rest of a block nor
// stays in the arena.
func New(blockSize, keep int) Arena {
	return Arena{block: blockSize, keep: keep}
}

// Copy returns a copy of b that lives in the arena until Reset. The copy's
// capacity is its length: appending to it allocates.
func (a *Arena) Copy(b []byte) []byte {
	if len(b) > a.block/4 {
		c := make([]byte, len(b))
		copy(c, b)
		return c
	}
	for {
		if a.cur == len(a.blocks) {
			a.blocks = append(a.blocks, make([]byte, 0, a.block))
		}
		blk := a.blocks[a.cur]
		if cap(blk)-len(blk) >= len(b) {
			start := len(blk)
			blk = append(blk, b...)
			a.blocks[a.cur] = blk
			return blk[start:len(blk):len(blk)]
		}
		a.cur++
	}
}

// Reset forgets every slice handed out and keeps up to the arena's keep
// bytes of blocks for reuse.
func (a *Arena) Reset() {
	kept := 0
	for i, blk := range a.blocks {
		if (kept+1)*a.block > a.keep {
			clear(a.blocks[i:])
			break
		}
		a.blocks[kept] = blk[:0]
		kept++
	}
	a.blocks = a.blocks[:kept]
	a.cur = 0
}
