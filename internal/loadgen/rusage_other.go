//go:build !unix

package loadgen

// selfCPU is not measured on this platform.
func selfCPU() float64 { return 0 }
