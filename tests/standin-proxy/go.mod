module meshexp.dev/standin-proxy

go 1.24
