package sinks

import "syscall"

const oDirect = syscall.O_DIRECT
