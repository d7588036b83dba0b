package event

import (
	"context"
	"errors"
	"testing"
)

// rangeLog records the ranges waited for and fails ranges that reach bad.
type rangeLog struct {
	waited [][2]uint64
	bad    uint64
}

func (l *rangeLog) WaitCommitted(_ context.Context, lo, hi uint64) error {
	l.waited = append(l.waited, [2]uint64{lo, hi})
	if l.bad != 0 && lo <= l.bad && l.bad <= hi {
		return errors.New("round failed")
	}
	return nil
}

func TestCommitMergesRangesPerLog(t *testing.T) {
	a, b := &rangeLog{}, &rangeLog{bad: 7}
	var c Commit
	if !c.Empty() {
		t.Fatal("zero Commit not empty")
	}
	c.Add(a, 5, 6)
	c.Add(b, 7, 7)
	c.Add(a, 2, 3) // a copy fan-out and a second batch: one range per log
	c.Add(a, 9, 9)
	if err := c.Wait(context.Background()); err == nil {
		t.Fatal("a failed log's error was not returned")
	}
	if len(a.waited) != 1 || a.waited[0] != [2]uint64{2, 9} || len(b.waited) != 1 {
		t.Fatalf("waited a %v b %v, want a [2 9] once, b once", a.waited, b.waited)
	}
	c.Reset()
	if !c.Empty() || c.Wait(context.Background()) != nil {
		t.Fatal("Reset did not empty the Commit")
	}
}
