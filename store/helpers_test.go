package store

const helperEnv = "PROCWATCH_STORE_HELPER"

func runHelper(name string) int { return 2 }

var benchCleanup func()

func cleanupBenchDB() {
	if benchCleanup != nil {
		benchCleanup()
	}
}
