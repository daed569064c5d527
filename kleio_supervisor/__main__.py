from kleio_supervisor.supervisor import main

raise SystemExit(main())
