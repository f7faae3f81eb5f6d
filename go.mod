module github.com/understudy-rt/understudy

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/klauspost/cpuid/v2 v2.4.2
	golang.org/x/sys v0.50.0
)
