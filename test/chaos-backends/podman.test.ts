// The crash-and-resume campaign (quick) on podman: test/chaos/remoteCrash.ts.
import { crashAndResumeOn } from "../chaos/remoteCrash.ts"

crashAndResumeOn("podman")
