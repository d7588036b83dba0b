package sinks

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDirectWriter writes random sequences of writes (small, large, whole
// aligned buffers through bufio) with O_DIRECT where the folder allows it
// and through the page cache otherwise, and reads the files back.
func TestDirectWriter(t *testing.T) {
	dirs := map[string]string{"tempdir": t.TempDir()}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "maruta-direct"); err == nil {
			defer os.RemoveAll(d)
			dirs["tmpfs"] = d
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	fill := rand.NewChaCha8([32]byte{9}) // content: a byte loop took 90% of the test under -race
	for name, dir := range dirs {
		for round := 0; round < 12; round++ {
			f, err := os.CreateTemp(dir, "direct")
			if err != nil {
				t.Fatal(err)
			}
			w := newDirectWriter(f)
			if round%4 == 3 {
				w.closeDirect() // buffered from the start
			}
			direct := w.d != nil
			var want bytes.Buffer
			var bw *bufio.Writer
			if round%2 == 0 {
				bw = bufio.NewWriterSize(w, 1<<20)
			}
			for k := r.IntN(40); k > 0; k-- {
				n := r.IntN(5000)
				if r.IntN(6) == 0 {
					n = r.IntN(3 << 20)
				}
				if r.IntN(10) == 0 {
					n = directBlock * (1 + r.IntN(3))
				}
				p := make([]byte, n)
				fill.Read(p)
				want.Write(p)
				var err error
				if bw != nil {
					_, err = bw.Write(p)
				} else {
					_, err = w.Write(p)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if bw != nil {
				if err := bw.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			size, err := w.finish()
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(want.Len()) || !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%s round %d (direct %v): size %d, file %d bytes, want %d; equal %v",
					name, round, direct, size, len(got), want.Len(), bytes.Equal(got, want.Bytes()))
			}
			if round == 0 {
				t.Logf("%s: O_DIRECT %v", name, direct)
			}
			os.Remove(filepath.Join(dir, filepath.Base(f.Name())))
		}
	}
}
