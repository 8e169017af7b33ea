package kubelogin

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestGetTokenFailsClearlyUntilBuilt(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"get-token", "--login", "spn"}, strings.NewReader(""), &out, &errb)
	if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "not implemented yet") {
		t.Errorf("get-token: exit %d stdout %q stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Run(context.Background(), []string{"version"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), Name) {
		t.Errorf("version: %d %q", code, out.String())
	}
}
