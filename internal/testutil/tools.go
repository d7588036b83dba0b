package testutil

import (
	"os"
	"testing"
)

// Tool returns the value of the environment variable env naming a test
// tool. When it is unset or names nothing, the test is skipped, or fails
// when MARUTA_REQUIRE_TOOLS=1.
func Tool(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		if _, err := os.Stat(v); err == nil {
			return v
		}
	}
	msg := env + " is not set or missing: run `make tools` (or `make test`)"
	if os.Getenv("MARUTA_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
