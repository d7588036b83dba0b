package msgpack

// ReadHeader decodes the head of the value at the start of b without
// reading its body: the value's type, the size of the head in bytes, and the
// length that follows it (bytes for str, bin and ext; elements for an array;
// pairs for a map; 0 for every other type). For ext the type byte is part of
// the head. It is the building block of incremental scanners that must not
// rescan a large value each time more bytes arrive.
//
// ErrShort means b ends inside the head; any other error means the first
// byte is not a msgpack type (0xc1). Nothing is allocated and the declared
// length is not checked against len(b).
func ReadHeader(b []byte) (t Type, head int, n uint64, err error) {
	return header(b)
}
