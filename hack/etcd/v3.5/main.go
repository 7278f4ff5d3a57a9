// The etcd server at the release pinned in go.mod, built by hack/etcd/build.sh.
// etcd's own server/v3 module has replace directives, so `go install MODULE@VERSION`
// refuses it; this one-line main module requires it instead (its go.sum pins the rest).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
