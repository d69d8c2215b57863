module templateharness/ollamarender

go 1.22
