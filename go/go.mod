module meshexp.dev/components

go 1.22
