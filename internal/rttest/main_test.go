package rttest_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain keeps the child-process bodies (TestHelper*) out of a direct
// run, where they would read as tests that passed or skipped.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(helperEnv) == "" {
		flag.Set("test.skip", "^TestHelper")
	}
	os.Exit(m.Run())
}
