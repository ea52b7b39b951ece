package workqueue

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	it := Item{Job: "20240303-120000-0123456789ab", Index: 3, Scope: "/subscriptions/x", Period: "202401", Metric: "usage"}
	text := Encode(it)
	plain, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		t.Fatalf("Encode is not base64 (the trigger's default messageEncoding): %v", err)
	}
	asString, _ := json.Marshal(string(plain))
	asB64String, _ := json.Marshal(text)
	want := it
	want.Version = Version
	for name, raw := range map[string]string{
		"message text as a JSON string (what the host sends)": string(asString),
		"message as a JSON value":                             string(plain),
		"still base64 (messageEncoding none)":                 string(asB64String),
	} {
		got, err := Decode(json.RawMessage(raw))
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, want)
		}
	}
	for name, raw := range map[string]string{
		"the docs' fixture message": `"{ message: \"Message sent\" }"`,
		"empty":                     `""`,
		"null":                      `null`,
		"unknown field":             `{"v":1,"job":"j","index":0,"scope":"s","billingPeriod":"202401","metric":"usage","x":1}`,
		"other version":             `{"v":2,"job":"j","index":0,"scope":"s","billingPeriod":"202401","metric":"usage"}`,
		"missing scope":             `{"v":1,"job":"j","index":0,"billingPeriod":"202401","metric":"usage"}`,
		"negative index":            `{"v":1,"job":"j","index":-1,"scope":"s","billingPeriod":"202401","metric":"usage"}`,
		"too large":                 `"` + strings.Repeat("a", maxItemBytes) + `"`,
	} {
		if _, err := Decode(json.RawMessage(raw)); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		url     string
		conn    bool
		queue   string
		wantErr string
	}{
		{"connection string", map[string]string{EnvConnection: "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;QueueEndpoint=http://127.0.0.1:1/a;"}, "", true, DefaultQueue, ""},
		{"development storage", map[string]string{EnvConnection: "UseDevelopmentStorage=true"}, "", true, DefaultQueue, ""},
		{"identity: queue endpoint", map[string]string{EnvQueueServiceURI: "https://acct.queue.core.windows.net/", EnvQueue: "work-1"}, "https://acct.queue.core.windows.net", false, "work-1", ""},
		{"identity: account name", map[string]string{EnvAccountName: "acct", EnvClientID: "c"}, "https://acct.queue.core.windows.net", false, DefaultQueue, ""},
		{"nothing", map[string]string{}, "", false, "", "no queue connection"},
		{"http endpoint", map[string]string{EnvQueueServiceURI: "http://acct.queue.core.windows.net"}, "", false, "", "https"},
		{"bad queue name", map[string]string{EnvAccountName: "acct", EnvQueue: "Work_Queue"}, "", false, "", EnvQueue},
		{"queue name too long for its poison queue", map[string]string{EnvAccountName: "acct", EnvQueue: strings.Repeat("a", 60)}, "", false, "", EnvQueue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || s.ServiceURL != tt.url || (s.ConnectionString != "") != tt.conn || s.Queue != tt.queue {
				t.Errorf("%+v, %v", s, err)
			}
		})
	}
}
