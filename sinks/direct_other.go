//go:build !linux

package sinks

const oDirect = 0
