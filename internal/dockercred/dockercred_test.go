package dockercred

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestGetAnswersNotFoundUntilBuilt(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"get"}, strings.NewReader("x.azurecr.io\n"), &out, &errb)
	if code != 1 || out.String() != errNotFound+"\n" {
		t.Errorf("get: exit %d stdout %q, want 1 and %q", code, out.String(), errNotFound)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"get", "extra"}, {"bogus"}} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 1 || out.Len() != 0 || errb.Len() == 0 {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, code, out.String(), errb.String())
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, strings.NewReader(""), &out, &out); code != 0 || !strings.HasPrefix(out.String(), Name) {
		t.Errorf("version: %d %q", code, out.String())
	}
}
