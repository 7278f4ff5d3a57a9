// Command karmada-aggregated-apiserver is Karmada's aggregated-apiserver, built from the pinned
// github.com/karmada-io/karmada module for xlinefed's test stack.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	controllerruntime "sigs.k8s.io/controller-runtime"

	"github.com/karmada-io/karmada/cmd/aggregated-apiserver/app"
)

func main() {
	ctx := controllerruntime.SetupSignalHandler()
	code := cli.Run(app.NewAggregatedApiserverCommand(ctx))
	logs.FlushLogs()
	os.Exit(code)
}
