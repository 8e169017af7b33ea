package entratest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

const (
	armScope = "https://management.azure.com/.default"
	adoScope = "499b84ac-1321-427f-aa17-267ca6975798/.default"
	adoAud   = "499b84ac-1321-427f-aa17-267ca6975798"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func confidentialClient(t *testing.T, s *Server, tenant, clientID string, cred confidential.Credential, opts ...confidential.Option) confidential.Client {
	t.Helper()
	opts = append([]confidential.Option{confidential.WithHTTPClient(s.HTTPClient()), confidential.WithInstanceDiscovery(false)}, opts...)
	c, err := confidential.New(s.Authority(tenant), clientID, cred, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func publicClient(t *testing.T, s *Server, tenant string) public.Client {
	t.Helper()
	c, err := public.New(AzureCLIClientID, public.WithAuthority(s.Authority(tenant)),
		public.WithHTTPClient(s.HTTPClient()), public.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustVerify(t *testing.T, s *Server, token, aud string) *Claims {
	t.Helper()
	c, err := s.Verify(token, aud)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return c
}

func TestConfidentialClientSecret(t *testing.T) {
	s := start(t)
	cred, _ := confidential.NewCredFromSecret(DefaultClientSecret)
	c := confidentialClient(t, s, DefaultTenantID, DefaultClientID, cred)
	res, err := c.AcquireTokenByCredential(ctx(t), []string{adoScope})
	if err != nil {
		t.Fatal(err)
	}
	claims := mustVerify(t, s, res.AccessToken, adoAud)
	if claims.TenantID != DefaultTenantID || claims.AppID != DefaultClientID || claims.UPN != "" {
		t.Errorf("claims = %+v", claims)
	}
	if d := time.Until(res.ExpiresOn); d < 55*time.Minute || d > 61*time.Minute {
		t.Errorf("ExpiresOn in %v, want about an hour", d)
	}
	// MSAL's in-memory cache answers the second call: no second token request.
	before := s.Count(EPToken)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{adoScope}); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(EPToken); got != before {
		t.Errorf("token requests went from %d to %d on a cached call", before, got)
	}
	if s.Count(EPInstanceDiscovery) != 0 {
		t.Errorf("instance discovery was requested with discovery off")
	}
	if s.Count(EPOpenIDConfig) != 1 {
		t.Errorf("openid-configuration requests = %d, want 1", s.Count(EPOpenIDConfig))
	}
}

func TestConfidentialClientWrongSecret(t *testing.T) {
	s := start(t)
	cred, _ := confidential.NewCredFromSecret("not-the-secret")
	c := confidentialClient(t, s, DefaultTenantID, DefaultClientID, cred)
	_, err := c.AcquireTokenByCredential(ctx(t), []string{adoScope})
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("err = %v, want invalid_client AADSTS7000215", err)
	}
}

func TestConfidentialClientTenantRules(t *testing.T) {
	s := start(t)
	other := "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	s.AddTenant(other)
	cred, _ := confidential.NewCredFromSecret(DefaultClientSecret)
	// A single-tenant app cannot get a token in another tenant.
	c := confidentialClient(t, s, other, DefaultClientID, cred)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil || !strings.Contains(err.Error(), "AADSTS700016") {
		t.Fatalf("err = %v, want AADSTS700016", err)
	}
	// An unknown tenant fails at discovery.
	c = confidentialClient(t, s, "bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee", DefaultClientID, cred)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil {
		t.Fatal("unknown tenant: no error")
	}
	// Tenant ids compare case-insensitively, in registrations and in URLs.
	s.AddApp(App{ClientID: "upper-app", Secret: "upper-secret", TenantID: strings.ToUpper(other)})
	ucred, _ := confidential.NewCredFromSecret("upper-secret")
	c = confidentialClient(t, s, strings.ToUpper(other), "upper-app", ucred)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err != nil {
		t.Fatalf("upper-case tenant: %v", err)
	}
	// A multi-tenant app can, and the token carries that tenant.
	s.AddApp(App{ClientID: "multi-app", Secret: "multi-secret", MultiTenant: true})
	mcred, _ := confidential.NewCredFromSecret("multi-secret")
	c = confidentialClient(t, s, other, "multi-app", mcred)
	res, err := c.AcquireTokenByCredential(ctx(t), []string{armScope})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustVerify(t, s, res.AccessToken, "https://management.azure.com").TenantID; got != other {
		t.Errorf("tid = %s, want %s", got, other)
	}
}

func newRSACert(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "entratest client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func TestConfidentialClientCertificate(t *testing.T) {
	s := start(t)
	cert, key := newRSACert(t)
	s.AddApp(App{ClientID: "cert-app", Certificates: []*x509.Certificate{cert}})
	for _, x5c := range []bool{false, true} {
		cred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
		if err != nil {
			t.Fatal(err)
		}
		var opts []confidential.Option
		if x5c {
			opts = append(opts, confidential.WithX5C())
		}
		c := confidentialClient(t, s, DefaultTenantID, "cert-app", cred, opts...)
		res, err := c.AcquireTokenByCredential(ctx(t), []string{armScope})
		if err != nil {
			t.Fatalf("x5c=%v: %v", x5c, err)
		}
		mustVerify(t, s, res.AccessToken, "https://management.azure.com/")
	}

	// A certificate the app does not have is refused.
	other, otherKey := newRSACert(t)
	cred, _ := confidential.NewCredFromCert([]*x509.Certificate{other}, otherKey)
	c := confidentialClient(t, s, DefaultTenantID, "cert-app", cred)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("unregistered certificate: err = %v", err)
	}
	// The registered certificate's thumbprint with another key's signature is refused.
	forged := confidential.NewCredFromAssertionCallback(func(_ context.Context, o confidential.AssertionRequestOptions) (string, error) {
		sum := sha256.Sum256(cert.Raw)
		now := time.Now().Unix()
		return signJWTHeader(otherKey, map[string]any{"typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(sum[:])},
			map[string]any{"aud": o.TokenEndpoint, "iss": "cert-app", "sub": "cert-app", "exp": now + 600, "nbf": now, "jti": "x"})
	})
	c = confidentialClient(t, s, DefaultTenantID, "cert-app", forged)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("forged assertion: err = %v", err)
	}
}

func TestFederatedAssertion(t *testing.T) {
	s := start(t)
	subject := "system:serviceaccount:default:workload"
	s.AddApp(App{ClientID: "wi-app", Federated: []FederatedCredential{{Issuer: s.FederationIssuer(), Subject: subject}}})
	assertFor := func(sub string) confidential.Credential {
		return confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
			return s.IssueFederatedToken(s.FederationIssuer(), sub, 10*time.Minute)
		})
	}
	c := confidentialClient(t, s, DefaultTenantID, "wi-app", assertFor(subject))
	res, err := c.AcquireTokenByCredential(ctx(t), []string{"https://containerregistry.azure.net/.default"})
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, res.AccessToken, "https://containerregistry.azure.net")

	c = confidentialClient(t, s, DefaultTenantID, "wi-app", assertFor("system:serviceaccount:default:other"))
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil || !strings.Contains(err.Error(), "federated identity record") {
		t.Fatalf("wrong subject: err = %v", err)
	}
	// An expired federated token is refused.
	expired := confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
		return s.IssueFederatedToken(s.FederationIssuer(), subject, -time.Minute)
	})
	c = confidentialClient(t, s, DefaultTenantID, "wi-app", expired)
	if _, err := c.AcquireTokenByCredential(ctx(t), []string{armScope}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired assertion: err = %v", err)
	}
}

func TestPublicClientPasswordThenSilentRefresh(t *testing.T) {
	s := start(t)
	c := publicClient(t, s, "organizations")
	res, err := c.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, DefaultUsername, DefaultUserPassword)
	if err != nil {
		t.Fatal(err)
	}
	claims := mustVerify(t, s, res.AccessToken, adoAud)
	if claims.UPN != DefaultUsername || claims.TenantID != DefaultTenantID || claims.ObjectID != DefaultUserObjectID {
		t.Errorf("claims = %+v", claims)
	}
	if res.Account.PreferredUsername != DefaultUsername {
		t.Errorf("account = %+v: MSAL did not build an account from id_token/client_info", res.Account)
	}
	// Another resource for the same account: MSAL redeems the refresh token.
	accts, err := c.Accounts(ctx(t))
	if err != nil || len(accts) != 1 {
		t.Fatalf("accounts = %v, %v", accts, err)
	}
	res2, err := c.AcquireTokenSilent(ctx(t), []string{armScope}, public.WithSilentAccount(accts[0]))
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, res2.AccessToken, "https://management.azure.com")
	if s.GrantCount("refresh_token") != 1 {
		t.Errorf("refresh_token grants = %d, want 1", s.GrantCount("refresh_token"))
	}

	if _, err := c.AcquireTokenByUsernamePassword(ctx(t), []string{adoScope}, DefaultUsername, "wrong"); err == nil || !strings.Contains(err.Error(), "AADSTS50126") {
		t.Fatalf("wrong password: err = %v", err)
	}
}

func TestRevokedRefreshTokenIsRefused(t *testing.T) {
	s := start(t)
	s.SetRevokeUsedRefreshTokens(true)
	post := func(form url.Values) (int, map[string]any) {
		resp, err := s.HTTPClient().PostForm(s.URL+"/organizations/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	base := url.Values{"client_id": {AzureCLIClientID}, "scope": {adoScope + " offline_access"}}
	form := url.Values{"grant_type": {"password"}, "username": {DefaultUsername}, "password": {DefaultUserPassword}}
	for k, v := range base {
		form[k] = v
	}
	status, body := post(form)
	rt, _ := body["refresh_token"].(string)
	if status != http.StatusOK || rt == "" {
		t.Fatalf("password grant: %d %v", status, body["error"])
	}
	redeem := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	for k, v := range base {
		redeem[k] = v
	}
	if status, body = post(redeem); status != http.StatusOK || body["refresh_token"] == rt {
		t.Fatalf("first redemption: %d %v (a new refresh token is expected)", status, body["error"])
	}
	// The spent refresh token is refused, as a lost cache update would find.
	if status, body = post(redeem); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("second redemption: %d %v, want 400 invalid_grant", status, body["error"])
	}
}

func TestDeviceCodeFlow(t *testing.T) {
	s := start(t)
	c := publicClient(t, s, "organizations")
	dc, err := c.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dc.Result.Message, dc.Result.UserCode) || !strings.HasPrefix(dc.Result.VerificationURL, s.URL) {
		t.Errorf("device code result = %+v", dc.Result)
	}
	if got := s.PendingDeviceCodes(); len(got) != 1 || got[0] != dc.Result.UserCode {
		t.Fatalf("pending = %v", got)
	}
	done := make(chan error, 1)
	var res public.AuthResult
	go func() { var err error; res, err = dc.AuthenticationResult(ctx(t)); done <- err }()
	// MSAL polls while the sign-in is pending (its interval grows, so approve
	// after the first answer of authorization_pending).
	deadline := time.Now().Add(10 * time.Second)
	for s.GrantCount("device_code") < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.ApproveDeviceCode(dc.Result.UserCode, DefaultUsername); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if mustVerify(t, s, res.AccessToken, adoAud).UPN != DefaultUsername {
		t.Error("wrong user")
	}

	// A declined sign-in ends the flow with an error.
	dc, err = c.AcquireTokenByDeviceCode(ctx(t), []string{adoScope})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DenyDeviceCode(dc.Result.UserCode); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.AuthenticationResult(ctx(t)); err == nil || !strings.Contains(err.Error(), "authorization_declined") {
		t.Fatalf("declined: err = %v", err)
	}
}

func TestInteractiveBrowserFlow(t *testing.T) {
	s := start(t)
	s.SetBrowserUser(DefaultUsername)
	c := publicClient(t, s, "organizations")
	// The "browser" posts the code to MSAL's loopback server.
	opened := ""
	browsed := make(chan error, 1)
	res, err := c.AcquireTokenInteractive(ctx(t), []string{adoScope}, public.WithOpenURL(func(u string) error {
		opened = u
		go func() { browsed <- s.Browse(context.Background(), u) }()
		return nil
	}))
	if berr := <-browsed; berr != nil {
		t.Errorf("Browse: %v", berr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(opened, s.URL+"/organizations/oauth2/v2.0/authorize?") {
		t.Errorf("opened %s", opened)
	}
	if mustVerify(t, s, res.AccessToken, adoAud).UPN != DefaultUsername {
		t.Error("wrong user")
	}
}

func TestManagedIdentityAppService(t *testing.T) {
	s := start(t)
	for k, v := range s.ManagedIdentityEnv() {
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		name string
		id   managedidentity.ID
		ok   bool
	}{
		{"system", managedidentity.SystemAssigned(), true},
		{"client id", managedidentity.UserAssignedClientID(DefaultMIClientID), true},
		{"object id", managedidentity.UserAssignedObjectID(DefaultMIObjectID), true},
		{"unassigned", managedidentity.UserAssignedClientID("11111111-1111-4111-8111-111111111111"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := managedidentity.New(tc.id, managedidentity.WithHTTPClient(s.HTTPClient()), managedidentity.WithRetryPolicyDisabled())
			if err != nil {
				t.Fatal(err)
			}
			if src, _ := managedidentity.GetSource(); src != managedidentity.AppService {
				t.Fatalf("source = %s", src)
			}
			res, err := c.AcquireToken(ctx(t), armScope)
			if !tc.ok {
				if err == nil {
					t.Fatal("no error for an unassigned identity")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			claims := mustVerify(t, s, res.AccessToken, "https://management.azure.com")
			if claims.AppID != DefaultMIClientID || claims.ObjectID != DefaultMIObjectID {
				t.Errorf("claims = %+v", claims)
			}
		})
	}
	if s.Count(EPAppService) == 0 {
		t.Error("App Service endpoint not reached")
	}
}

func TestManagedIdentityIMDS(t *testing.T) {
	s := start(t)
	for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
		t.Setenv(k, "")
	}
	c, err := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithHTTPClient(s.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.AcquireToken(ctx(t), "https://imds.example/.default")
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, s, res.AccessToken, "https://imds.example")
	if s.Count(EPIMDS) != 1 {
		t.Errorf("IMDS requests = %d", s.Count(EPIMDS))
	}
}

func TestManagedIdentityCloudShellAndAzureML(t *testing.T) {
	s := start(t)
	t.Setenv("IDENTITY_ENDPOINT", "")
	t.Setenv("IDENTITY_HEADER", "")
	t.Setenv("MSI_ENDPOINT", s.MIURL+CloudShellPath)
	t.Setenv("MSI_SECRET", "")
	c, _ := managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithHTTPClient(s.HTTPClient()))
	if res, err := c.AcquireToken(ctx(t), "https://cloudshell.example"); err != nil {
		t.Fatal(err)
	} else {
		mustVerify(t, s, res.AccessToken, "https://cloudshell.example")
	}
	t.Setenv("MSI_ENDPOINT", s.MIURL+AzureMLPath)
	t.Setenv("MSI_SECRET", s.IdentityHeader())
	c, _ = managedidentity.New(managedidentity.SystemAssigned(), managedidentity.WithHTTPClient(s.HTTPClient()))
	if res, err := c.AcquireToken(ctx(t), "https://azureml.example"); err != nil {
		t.Fatal(err)
	} else {
		mustVerify(t, s, res.AccessToken, "https://azureml.example")
	}
	if s.Count(EPCloudShell) != 1 || s.Count(EPAzureML) != 1 {
		t.Errorf("counts = %v", s.Counts())
	}
}

func TestFaultInjection(t *testing.T) {
	s := start(t)
	cred, _ := confidential.NewCredFromSecret(DefaultClientSecret)
	acquire := func() error {
		c := confidentialClient(t, s, DefaultTenantID, DefaultClientID, cred)
		_, err := c.AcquireTokenByCredential(ctx(t), []string{armScope})
		return err
	}
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Fault{Kind: FaultInvalidClient, Times: 1}, "invalid_client"},
		{Fault{Kind: FaultThrottle, Times: 1, RetryAfter: 7 * time.Second}, "429"},
		{Fault{Kind: FaultServerError, Times: 1}, "500"},
		{Fault{Kind: FaultDropConnection, Times: 1}, ""}, // EOF or a reset stream, by protocol
	} {
		s.SetFault(EPToken, tc.f)
		err := acquire()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fault %d: err = %v, want %q", tc.f.Kind, err, tc.want)
		}
		if s.FaultsServed(EPToken) != 1 {
			t.Errorf("fault %d served %d times", tc.f.Kind, s.FaultsServed(EPToken))
		}
		// Times: 1 — the next request goes through.
		if err := acquire(); err != nil {
			t.Errorf("after fault %d: %v", tc.f.Kind, err)
		}
	}

	// Retry-After is on the wire.
	s.SetFault(EPToken, Fault{Kind: FaultThrottle, Times: 1, RetryAfter: 7 * time.Second})
	resp, err := s.HTTPClient().PostForm(s.URL+"/"+DefaultTenantID+"/oauth2/v2.0/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	// A slow authority is cut off by the caller's deadline.
	s.SetFault(EPToken, Fault{Kind: FaultSlow, Delay: 5 * time.Second})
	c := confidentialClient(t, s, DefaultTenantID, DefaultClientID, cred)
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err = c.AcquireTokenByCredential(short, []string{armScope})
	if !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "deadline")) {
		t.Errorf("slow: err = %v", err)
	}
	if time.Since(begin) > 2*time.Second {
		t.Errorf("slow fault held the caller %v", time.Since(begin))
	}
}

func TestVerifyRejects(t *testing.T) {
	s := start(t)
	s.SetTokenLifetime(2 * time.Second)
	cred, _ := confidential.NewCredFromSecret(DefaultClientSecret)
	c := confidentialClient(t, s, DefaultTenantID, DefaultClientID, cred)
	res, err := c.AcquireTokenByCredential(ctx(t), []string{adoScope})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(res.AccessToken, "https://management.azure.com"); err == nil {
		t.Error("wrong audience accepted")
	}
	parts := strings.Split(res.AccessToken, ".")
	if _, err := s.Verify(parts[0]+"."+parts[1]+".AAAA", adoAud); err == nil {
		t.Error("bad signature accepted")
	}
	other := start(t)
	if _, err := other.Verify(res.AccessToken, adoAud); err == nil {
		t.Error("token of another authority accepted")
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := s.Verify(res.AccessToken, adoAud); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: err = %v", err)
	}
}
