package api

// PageParams are the pagination query parameters.
type PageParams struct {
	After string `query:"after" doc:"An ID: list what comes after it."`
	Limit int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many to return."`
}

// pageOf converts a page of stored items for a list answer: its data, and
// the IDs of its first and last items (nil when empty).
func pageOf[S, T any](list []S, conv func(S) T, id func(S) string) (data []T, first, last *string) {
	data = make([]T, len(list))
	for i, x := range list {
		data[i] = conv(x)
	}
	if len(list) > 0 {
		f, l := id(list[0]), id(list[len(list)-1])
		first, last = &f, &l
	}
	return data, first, last
}
