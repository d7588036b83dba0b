package buffer

const crashChildEnv = "MARUTA_BUFFER_CRASH_CHILD"

func crashChild(mode string) int { return 2 }
