//go:build race

package main

// raceBuild: the tests run with -race, so the maruta binary they start is
// built with it too.
const raceBuild = true
