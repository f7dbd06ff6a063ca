package llmsim

import "net/http"

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type modelCard struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	Root        string `json:"root"`
	Parent      any    `json:"parent"`
	MaxModelLen int    `json:"max_model_len"`
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	list := modelList{Object: "list", Data: make([]modelCard, len(s.cfg.Models))}
	for i, m := range s.cfg.Models {
		list.Data[i] = modelCard{
			ID:          m,
			Object:      "model",
			Created:     s.created,
			OwnedBy:     "kiln-sim",
			Root:        s.cfg.Models[0],
			MaxModelLen: MaxModelLen,
		}
	}
	writeJSON(w, http.StatusOK, list)
}
