module github.com/understudy-rt/understudy

go 1.26.8

require (
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/klauspost/cpuid/v2 v2.4.2
	github.com/stretchr/testify v1.11.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
