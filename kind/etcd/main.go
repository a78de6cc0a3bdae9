// Command etcd is etcd's server, as the etcd module's own main starts it: the
// node image's etcd, built from go.etcd.io/etcd/server/v3 on the Go module
// proxy at the version kubeadm asks for.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
