package entratest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Paths on the managed-identity listener. IMDS's path is fixed by Azure;
// the others are what IDENTITY_ENDPOINT or MSI_ENDPOINT point at.
const (
	AppServicePath = "/msi/token"
	IMDSPath       = "/metadata/identity/oauth2/token"
	CloudShellPath = "/cloudshell/token"
	AzureMLPath    = "/azureml/token"
)

// ManagedIdentityEnv returns the variables an App Service host sets, which
// make MSAL (and our chain) use this server's App Service endpoint.
func (s *Server) ManagedIdentityEnv() map[string]string {
	return map[string]string{"IDENTITY_ENDPOINT": s.MIURL + AppServicePath, "IDENTITY_HEADER": s.identityHdr}
}

// serveManagedIdentity routes the plain-HTTP listener. Real managed-identity
// endpoints are plain HTTP on a link-local or loopback address too.
func (s *Server) serveManagedIdentity(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case AppServicePath:
		s.handle(w, r, EPAppService, http.MethodGet, s.appService)
	case IMDSPath:
		s.handle(w, r, EPIMDS, http.MethodGet, s.imds)
	case CloudShellPath:
		s.handle(w, r, EPCloudShell, http.MethodPost, s.cloudShell)
	case AzureMLPath:
		s.handle(w, r, EPAzureML, http.MethodGet, s.azureML)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) countMIGrant() {
	s.mu.Lock()
	s.grants["managed_identity"]++
	s.mu.Unlock()
}

// appService answers the App Service shape (api-version 2019-08-01).
func (s *Server) appService(w http.ResponseWriter, r *http.Request) {
	s.countMIGrant()
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(s.identityHdr)) != 1 {
		writeMIError(w, http.StatusUnauthorized, "unauthorized", "X-IDENTITY-HEADER is missing or wrong")
		return
	}
	if q.Get("api-version") != "2019-08-01" {
		writeMIError(w, http.StatusBadRequest, "invalid_request", "api-version 2019-08-01 is required")
		return
	}
	mi, err := s.findMI(q.Get("client_id"), q.Get("object_id"), q.Get("mi_res_id"))
	if err != nil {
		writeMIError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.writeMIToken(w, mi, q.Get("resource"), false)
}

// imds answers the Azure Instance Metadata Service shape (2018-02-01).
func (s *Server) imds(w http.ResponseWriter, r *http.Request) {
	s.countMIGrant()
	q := r.URL.Query()
	if r.Header.Get("Metadata") != "true" {
		writeMIError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	resID := q.Get("msi_res_id")
	if resID == "" {
		resID = q.Get("mi_res_id")
	}
	mi, err := s.findMI(q.Get("client_id"), q.Get("object_id"), resID)
	if err != nil {
		writeMIError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	s.writeMIToken(w, mi, q.Get("resource"), true)
}

// cloudShell answers Cloud Shell's shape: a form POST with Metadata: true;
// it only has the signed-in user's identity, modelled as the system one.
func (s *Server) cloudShell(w http.ResponseWriter, r *http.Request) {
	s.countMIGrant()
	if r.Header.Get("Metadata") != "true" {
		writeMIError(w, http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
		return
	}
	_ = r.ParseForm()
	mi, err := s.findMI("", "", "")
	if err != nil {
		writeMIError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.writeMIToken(w, mi, r.PostForm.Get("resource"), false)
}

// azureML answers Azure ML's shape (MSI_SECRET in a "secret" header).
func (s *Server) azureML(w http.ResponseWriter, r *http.Request) {
	s.countMIGrant()
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("secret")), []byte(s.identityHdr)) != 1 {
		writeMIError(w, http.StatusUnauthorized, "unauthorized", "secret header is missing or wrong")
		return
	}
	mi, err := s.findMI(q.Get("clientid"), "", "")
	if err != nil {
		writeMIError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	s.writeMIToken(w, mi, q.Get("resource"), false)
}

// findMI picks the identity a request names; none named means system-assigned.
func (s *Server) findMI(clientID, objectID, resourceID string) (*ManagedIdentity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.mis {
		m := &s.mis[i]
		switch {
		case clientID != "" && strings.EqualFold(m.ClientID, clientID),
			objectID != "" && strings.EqualFold(m.ObjectID, objectID),
			resourceID != "" && strings.EqualFold(m.ResourceID, resourceID),
			clientID == "" && objectID == "" && resourceID == "" && m.SystemAssigned:
			cp := *m
			return &cp, nil
		}
	}
	if clientID == "" && objectID == "" && resourceID == "" {
		return nil, fmt.Errorf("no system-assigned managed identity is enabled on this resource")
	}
	return nil, fmt.Errorf("the requested user-assigned managed identity is not assigned to this resource")
}

func (s *Server) writeMIToken(w http.ResponseWriter, mi *ManagedIdentity, resource string, imds bool) {
	if resource == "" {
		writeMIError(w, http.StatusBadRequest, "invalid_resource", "resource is required")
		return
	}
	s.mu.Lock()
	lifetime := s.lifetime
	s.mu.Unlock()
	now := time.Now()
	at, err := s.accessToken(principal{tenant: mi.TenantID, clientID: mi.ClientID, mi: mi}, strings.TrimSuffix(resource, "/.default"), "", now, lifetime)
	if err != nil {
		writeMIError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	// Managed-identity endpoints send numbers as strings.
	resp := map[string]any{
		"access_token": at,
		"expires_on":   fmt.Sprint(now.Add(lifetime).Unix()),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    mi.ClientID,
	}
	if imds {
		resp["expires_in"] = fmt.Sprint(int64(lifetime / time.Second))
		resp["ext_expires_in"] = resp["expires_in"]
		resp["not_before"] = fmt.Sprint(now.Unix())
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeMIError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
