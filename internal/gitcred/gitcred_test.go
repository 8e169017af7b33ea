package gitcred

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader("protocol=https\nhost=dev.azure.com\n\n"), &out, &errb)
	return code, out.String(), errb.String()
}

// Until the helper is built, every action must leave git free to use its
// next helper: nothing on stdout, exit 0.
func TestActionsGiveNoAnswerYet(t *testing.T) {
	for _, action := range []string{"get", "store", "erase", "some-future-action"} {
		code, out, _ := run(t, action)
		if code != 0 || out != "" {
			t.Errorf("%s: exit %d stdout %q, want 0 and nothing", action, code, out)
		}
	}
	if _, _, errs := run(t, "get"); !strings.Contains(errs, "not implemented yet") {
		t.Errorf("get: stderr %q does not say the helper is not built", errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, Name+" ") {
		t.Errorf("version: exit %d stdout %q", code, out)
	}
}
