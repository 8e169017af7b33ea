package entratest

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// oidcScopes are added by MSAL to user flows; they name no resource.
var oidcScopes = map[string]bool{"openid": true, "offline_access": true, "profile": true, "email": true}

const graphResource = "00000003-0000-0000-c000-000000000000"

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// serveAuthority routes the TLS listener: it serves the paths MSAL for Go
// builds from an authority URL (apps/internal/oauth/ops/authority).
func (s *Server) serveAuthority(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "common" && parts[1] == "discovery" && parts[2] == "instance":
		s.handle(w, r, EPInstanceDiscovery, http.MethodGet, s.instanceDiscovery)
	case len(parts) == 3 && strings.EqualFold(parts[0], "common") && strings.EqualFold(parts[1], "userrealm"):
		s.handle(w, r, EPUserRealm, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { s.userRealm(w, r, parts[2]) })
	case len(parts) == 4 && parts[1] == "v2.0" && parts[2] == ".well-known" && parts[3] == "openid-configuration",
		len(parts) == 3 && parts[1] == ".well-known" && parts[2] == "openid-configuration":
		s.handle(w, r, EPOpenIDConfig, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { s.openIDConfig(w, r, parts[0]) })
	case len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "token":
		s.handle(w, r, EPToken, http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.token(w, r, parts[0]) })
	case len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "devicecode":
		s.handle(w, r, EPDeviceCode, http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.deviceCodeStart(w, r, parts[0]) })
	case len(parts) == 4 && parts[1] == "oauth2" && parts[2] == "v2.0" && parts[3] == "authorize":
		s.handle(w, r, EPAuthorize, http.MethodGet, func(w http.ResponseWriter, r *http.Request) { s.authorize(w, r, parts[0]) })
	case len(parts) == 4 && parts[1] == "discovery" && parts[2] == "v2.0" && parts[3] == "keys":
		s.handle(w, r, EPKeys, http.MethodGet, s.keys)
	case len(parts) == 1 && parts[0] == "devicelogin":
		s.deviceLoginPage(w, r)
	default:
		writeOAuthError(w, http.StatusNotFound, "invalid_request", 90019, "no such endpoint: "+r.URL.Path)
	}
}

// handle counts the request, applies any fault, checks the method and runs h.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, ep Endpoint, method string, h http.HandlerFunc) {
	s.logf("entratest: %s %s (%s)", r.Method, r.URL.Path, ep)
	if f := s.count(ep); f != nil && s.applyFault(w, r, f) {
		return
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "use "+method)
		return
	}
	h(w, r)
}

func (s *Server) instanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := s.Host()
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.URL + "/common/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

func (s *Server) userRealm(w http.ResponseWriter, r *http.Request, username string) {
	name, _ := url.PathUnescape(username)
	domain := name
	if i := strings.LastIndex(name, "@"); i >= 0 {
		domain = name[i+1:]
	}
	// Every account here is cloud-only ("Managed"): MSAL then uses the
	// password grant directly instead of WS-Trust.
	writeJSON(w, http.StatusOK, map[string]any{
		"ver": "1.0", "account_type": "Managed", "domain_name": domain,
		"cloud_instance_name": "microsoftonline.com", "cloud_audience_urn": "urn:federation:MicrosoftOnline",
	})
}

func (s *Server) openIDConfig(w http.ResponseWriter, r *http.Request, tenant string) {
	tid, err := s.resolveTenant(tenant)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("tenant '%s' not found", tenant))
		return
	}
	issuerTenant := tid
	if issuerTenant == "" {
		issuerTenant = "{tenantid}" // as Entra answers for common/organizations
	}
	base := s.URL + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.URL + "/" + issuerTenant + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"tenant_region_scope":                   "WW",
		"cloud_instance_name":                   "microsoftonline.com",
	})
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request) {
	pub := s.signKey.PublicKey
	e := big2b64(int64(pub.E))
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.kid,
		"n": b64.EncodeToString(pub.N.Bytes()), "e": e,
	}}})
}

func big2b64(v int64) string {
	var b []byte
	for ; v > 0; v >>= 8 {
		b = append([]byte{byte(v)}, b...)
	}
	return b64.EncodeToString(b)
}

// principal is who a token is issued to.
type principal struct {
	tenant   string
	clientID string
	user     *User            // nil for app-only tokens
	mi       *ManagedIdentity // set for managed-identity tokens
}

type rtGrant struct {
	clientID string
	username string
	tenant   string
}

// token serves POST /{tenant}/oauth2/v2.0/token for every grant MSAL uses.
func (s *Server) token(w http.ResponseWriter, r *http.Request, pathTenant string) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 900144, "the request body must be application/x-www-form-urlencoded")
		return
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	s.mu.Lock()
	s.grants[grant]++
	s.mu.Unlock()
	tid, err := s.resolveTenant(pathTenant)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("tenant '%s' not found; check the tenant id and the authority host", pathTenant))
		return
	}
	clientID := strings.ToLower(f.Get("client_id"))
	if clientID == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", 900144, "the request body must contain the following parameter: 'client_id'")
		return
	}
	s.mu.Lock()
	app := s.apps[clientID]
	s.mu.Unlock()
	if app == nil {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("application with identifier '%s' was not found in the directory", clientID))
		return
	}
	scopes := strings.Fields(f.Get("scope"))
	wantClientInfo := f.Get("client_info") == "1"

	switch grant {
	case "client_credentials":
		if tid == "" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", 700025, "client credential flows need a tenant-specific authority, not "+pathTenant)
			return
		}
		if !s.authenticateClient(w, r, app, pathTenant, true) {
			return
		}
		if !appInTenant(app, tid) {
			writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
				fmt.Sprintf("application with identifier '%s' was not found in the directory '%s'", clientID, tid))
			return
		}
		// MSAL adds openid, offline_access and profile even here; Entra ignores them.
		var res []string
		for _, sc := range scopes {
			if !oidcScopes[sc] {
				res = append(res, sc)
			}
		}
		if len(res) != 1 || !strings.HasSuffix(res[0], "/.default") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_scope", 1002012, "the provided value for scope is not valid: client credential flows must have a single scope ending in /.default")
			return
		}
		s.issue(w, principal{tenant: tid, clientID: app.ClientID}, scopes, false)

	case "password":
		if !s.authenticateClient(w, r, app, pathTenant, false) {
			return
		}
		s.mu.Lock()
		u := s.users[strings.ToLower(f.Get("username"))]
		s.mu.Unlock()
		if u == nil || subtle.ConstantTimeCompare([]byte(u.Password), []byte(f.Get("password"))) != 1 {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 50126, "error validating credentials due to invalid username or password")
			return
		}
		s.issueUser(w, app, u, tid, scopes, wantClientInfo)

	case "refresh_token":
		if !s.authenticateClient(w, r, app, pathTenant, false) {
			return
		}
		rt := f.Get("refresh_token")
		s.mu.Lock()
		g, ok := s.refreshTokens[rt]
		if ok && s.revokeUsedRT {
			delete(s.refreshTokens, rt)
		}
		u := s.users[g.username]
		s.mu.Unlock()
		if !ok || u == nil || g.clientID != clientID {
			writeOAuthError(w, http.StatusBadRequest, "invalid_grant", 70000, "the provided refresh token is invalid, expired or was issued to another client")
			return
		}
		if tid == "" {
			tid = g.tenant
		}
		s.issueUser(w, app, u, tid, scopes, wantClientInfo)

	case "device_code", "urn:ietf:params:oauth:grant-type:device_code": // MSAL sends the short form
		s.deviceCodeToken(w, r, app, f.Get("device_code"), scopes, wantClientInfo)

	case "authorization_code":
		if !s.authenticateClient(w, r, app, pathTenant, false) {
			return
		}
		s.authCodeToken(w, app, f, scopes, wantClientInfo)

	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("the app requested an unsupported grant type '%s'", grant))
	}
}

func appInTenant(app *App, tid string) bool {
	return app.MultiTenant || strings.EqualFold(app.TenantID, tid)
}

// authenticateClient checks the client credential: a secret, an assertion
// signed by a registered certificate, or a federated assertion. Public apps
// need none for user flows; confidential ones always do.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request, app *App, pathTenant string, required bool) bool {
	f := r.PostForm
	secret := f.Get("client_secret")
	assertion := f.Get("client_assertion")
	switch {
	case secret != "":
		if app.Secret == "" || subtle.ConstantTimeCompare([]byte(app.Secret), []byte(secret)) != 1 {
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", 7000215, "invalid client secret provided: ensure the secret being sent in the request is the client secret value, not the client secret ID")
			return false
		}
		return true
	case assertion != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", 70002, "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			return false
		}
		if err := s.verifyClientAssertion(app, assertion, pathTenant); err != nil {
			code := 700027
			if errors.Is(err, errNoFederatedMatch) {
				code = 70021 // what Entra answers for an issuer/subject no credential lists
			}
			writeOAuthError(w, http.StatusUnauthorized, "invalid_client", code, "client assertion failed validation: "+err.Error())
			return false
		}
		return true
	case !required && app.Public:
		return true
	default:
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", 7000218, "the request body must contain the following parameter: 'client_assertion' or 'client_secret'")
		return false
	}
}

func (s *Server) verifyClientAssertion(app *App, raw, pathTenant string) error {
	p, err := parseJWT(raw)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	exp, ok := p.num("exp")
	if !ok || exp <= now {
		return fmt.Errorf("the assertion is expired")
	}
	if nbf, ok := p.num("nbf"); ok && nbf > now+300 {
		return fmt.Errorf("the assertion is not yet valid")
	}
	iss := p.str("iss")
	if strings.EqualFold(iss, app.ClientID) {
		return s.verifyCertAssertion(app, p, pathTenant)
	}
	// An external token: a federated identity credential must match it.
	sub := p.str("sub")
	matched := false
	for _, fc := range app.Federated {
		if fc.Issuer == iss && fc.Subject == sub {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("%w for presented assertion issuer '%s' and subject '%s'", errNoFederatedMatch, iss, sub)
	}
	if !p.hasAudience(FederationAudience) {
		return fmt.Errorf("the assertion audience must be %s", FederationAudience)
	}
	if err := p.verify(&s.fedKey.PublicKey); err != nil {
		return fmt.Errorf("the assertion signature does not verify with the issuer's keys")
	}
	return nil
}

var errNoFederatedMatch = errors.New("no matching federated identity record found")

func (s *Server) verifyCertAssertion(app *App, p *parsedJWT, pathTenant string) error {
	if !strings.EqualFold(p.str("sub"), app.ClientID) {
		return fmt.Errorf("sub must be the client id")
	}
	wantAud := s.URL + "/" + strings.ToLower(pathTenant) + "/oauth2/v2.0/token"
	if !p.hasAudience(wantAud) && !p.hasAudience(strings.ToLower(wantAud)) {
		return fmt.Errorf("aud must be the token endpoint %s", wantAud)
	}
	cert := findCert(app.Certificates, p.header)
	if cert == nil {
		return fmt.Errorf("the certificate thumbprint in the assertion header is not registered for the app")
	}
	rsaPub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("the registered certificate has no RSA key")
	}
	if err := p.verify(rsaPub); err != nil {
		return fmt.Errorf("the assertion signature does not verify with the registered certificate")
	}
	return nil
}

// findCert matches the x5t#S256 (MSAL, standard base64), x5t (SHA-1) or x5c
// header against the app's certificates.
func findCert(certs []*x509.Certificate, hdr map[string]any) *x509.Certificate {
	decode := func(v string) []byte {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(v); err == nil {
				return b
			}
		}
		return nil
	}
	for _, c := range certs {
		s256 := sha256.Sum256(c.Raw)
		s1 := sha1.Sum(c.Raw)
		if v, _ := hdr["x5t#S256"].(string); v != "" && string(decode(v)) == string(s256[:]) {
			return c
		}
		if v, _ := hdr["x5t"].(string); v != "" && string(decode(v)) == string(s1[:]) {
			return c
		}
		if chain, _ := hdr["x5c"].([]any); len(chain) > 0 {
			if first, _ := chain[0].(string); string(decode(first)) == string(c.Raw) {
				return c
			}
		}
	}
	return nil
}

// issueUser issues a delegated token with a refresh token, an id_token and
// client_info, which MSAL needs to build an account.
func (s *Server) issueUser(w http.ResponseWriter, app *App, u *User, tid string, scopes []string, clientInfo bool) {
	if tid == "" {
		tid = u.TenantID
	}
	if !appInTenant(app, tid) && !app.Public {
		writeOAuthError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("application with identifier '%s' was not found in the directory '%s'", app.ClientID, tid))
		return
	}
	s.issue(w, principal{tenant: tid, clientID: app.ClientID, user: u}, scopes, clientInfo)
}

// issue writes a token response for p.
func (s *Server) issue(w http.ResponseWriter, p principal, scopes []string, clientInfo bool) {
	aud, scp, resScopes, err := resourceOf(scopes)
	if err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", 28000, err.Error())
		return
	}
	s.mu.Lock()
	lifetime, refreshIn := s.lifetime, s.refreshIn
	s.mu.Unlock()
	now := time.Now()
	at, err := s.accessToken(p, aud, scp, now, lifetime)
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", 50000, "could not sign the token")
		return
	}
	resp := map[string]any{
		"token_type":     "Bearer",
		"scope":          strings.Join(resScopes, " "),
		"expires_in":     int64(lifetime / time.Second),
		"ext_expires_in": int64(lifetime / time.Second),
		"access_token":   at,
	}
	if refreshIn > 0 {
		resp["refresh_in"] = int64(refreshIn / time.Second)
	}
	if u := p.user; u != nil {
		rt := "rt." + randHex(32)
		s.mu.Lock()
		s.refreshTokens[rt] = rtGrant{clientID: strings.ToLower(p.clientID), username: strings.ToLower(u.Username), tenant: p.tenant}
		s.mu.Unlock()
		resp["refresh_token"] = rt
		resp["id_token"] = unsignedJWT(map[string]any{
			"aud": p.clientID, "iss": s.URL + "/" + p.tenant + "/v2.0", "iat": now.Unix(), "nbf": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "name": u.Name, "oid": u.ObjectID, "preferred_username": u.Username,
			"sub": u.ObjectID, "tid": p.tenant, "ver": "2.0",
		})
		if clientInfo {
			ci, _ := json.Marshal(map[string]string{"uid": u.ObjectID, "utid": u.TenantID})
			resp["client_info"] = b64.EncodeToString(ci)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// accessToken signs an access token the way Entra shapes a v2.0 token.
func (s *Server) accessToken(p principal, aud, scp string, now time.Time, lifetime time.Duration) (string, error) {
	c := map[string]any{
		"aud": aud, "iss": s.URL + "/" + p.tenant + "/v2.0", "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(lifetime).Unix(), "tid": p.tenant, "appid": p.clientID, "azp": p.clientID,
		"ver": "2.0", "uti": randHex(8),
	}
	switch {
	case p.user != nil:
		c["oid"], c["sub"], c["upn"], c["name"], c["idtyp"] = p.user.ObjectID, p.user.ObjectID, p.user.Username, p.user.Name, "user"
		c["scp"] = scp
	case p.mi != nil:
		c["oid"], c["sub"], c["idtyp"], c["xms_mirid"] = p.mi.ObjectID, p.mi.ObjectID, "app", p.mi.ResourceID
	default:
		oid := servicePrincipalOID(p.clientID)
		c["oid"], c["sub"], c["idtyp"] = oid, oid, "app"
	}
	return signJWT(s.signKey, s.kid, c)
}

// servicePrincipalOID derives a stable object id for an app, so tokens for
// the same app carry the same oid across runs.
func servicePrincipalOID(clientID string) string {
	h := sha256.Sum256([]byte("sp:" + strings.ToLower(clientID)))
	x := fmt.Sprintf("%x", h[:16])
	return x[:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// resourceOf turns requested scopes into the token audience, the scp claim
// and the granted scope list; a request may name only one resource.
func resourceOf(scopes []string) (aud, scp string, granted []string, err error) {
	var perms []string
	for _, sc := range scopes {
		if oidcScopes[sc] {
			continue
		}
		res, perm := graphResource, sc
		if i := strings.LastIndex(sc, "/"); i > 0 {
			res, perm = sc[:i], sc[i+1:]
		}
		if aud != "" && aud != res {
			return "", "", nil, fmt.Errorf("the scopes name more than one resource (%s and %s); request one resource per token", aud, res)
		}
		aud = res
		if perm == ".default" {
			perm = "user_impersonation"
		}
		perms = append(perms, perm)
		granted = append(granted, sc)
	}
	if aud == "" {
		return "", "", nil, fmt.Errorf("no resource scope was requested")
	}
	return aud, strings.Join(perms, " "), granted, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError answers in Entra's error shape: error, an AADSTS-prefixed
// description, error_codes and the ids a support case asks for.
func writeOAuthError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	trace, corr := newGUID(), newGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	})
}

// deviceLoginPage is the page a person opens in the standalone server to
// approve a device code by hand (tests call ApproveDeviceCode instead).
func (s *Server) deviceLoginPage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		u := r.PostForm.Get("username")
		s.mu.Lock()
		user := s.users[strings.ToLower(u)]
		s.mu.Unlock()
		if user == nil || subtle.ConstantTimeCompare([]byte(user.Password), []byte(r.PostForm.Get("password"))) != 1 {
			http.Error(w, "unknown user or wrong password", http.StatusForbidden)
			return
		}
		if err := s.ApproveDeviceCode(r.PostForm.Get("code"), u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "Signed in as %s. You can close this page and return to your terminal.\n", html.EscapeString(u))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><title>entratest device sign-in</title><form method="post">
<p>Code <input name="code"></p><p>Username <input name="username"></p><p>Password <input name="password" type="password"></p>
<button>Sign in</button></form>`)
}
