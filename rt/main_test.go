package rt_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain keeps TestHelperProcess, the body of this package's child
// processes, out of a direct run, where it would pass having tested nothing.
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(helperEnv) == "" {
		flag.Set("test.skip", "^TestHelperProcess$")
	}
	os.Exit(m.Run())
}
